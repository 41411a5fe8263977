"""``nixmod catalog publish``: list every configured channel once, write the site index.

Above the catalog, because the merged search index it embeds is the
catalog's own (``catalogindex.build_index``); the site index file format and
the checks on its directory stay in ``siteindex``, which every user's
catalog reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nixmod import catalogcache, channels
from nixmod.catalogindex import build_index
from nixmod.config import Config
from nixmod.siteindex import Progress, SiteListing, check_publish_dir, write_index

__all__ = ["PublishedChannel", "publish"]


@dataclass(frozen=True)
class PublishedChannel:
    """What ``catalog publish`` did with one channel."""

    name: str
    kind: str
    source: str
    packages: int
    error: str = ""


def publish(config: Config, directory: Path, progress: Progress | None = None
            ) -> list[PublishedChannel]:
    """List each of ``config``'s channels once and publish the index into ``directory``.

    Channels are listed through the publisher's own per-channel cache (keyed
    by identity, so it is as true as a fresh listing) and never from an older
    site index. A channel that fails is recorded as failed (users list it
    themselves); the others are still published. The merged index is added
    only when every channel listed.
    """
    say = progress or (lambda message: None)
    directory = directory.absolute()
    check_publish_dir(directory, config.catalog.publisher)
    cache = config.cache_dir / "catalog"
    channels.require_writable(cache)
    lister = channels.ChannelLister(cache, say)
    identities = [channels.channel_identity(c) for c in config.channels]
    listings = [lister.listing(c, i, False) for c, i in zip(config.channels, identities)]
    published: list[tuple[str, str, SiteListing]] = []
    failed: dict[str, str] = {}
    report: list[PublishedChannel] = []
    for channel, identity, listing in zip(config.channels, identities, listings):
        kind = channels.channel_kind(channel)
        source = str(channel.listing or channel.path or channel.url)
        if listing.error:
            failed[channel.name] = listing.error
        else:
            published.append((channel.name, catalogcache.digest((catalogcache.FORMAT, identity)),
                              SiteListing(listing.records, listing.skipped, listing.listed_at)))
        report.append(PublishedChannel(channel.name, kind, source, len(listing.records),
                                       listing.error))
    merged = None
    if not failed:
        key = catalogcache.digest((catalogcache.FORMAT, [(c.name, i)
                                                for c, i in zip(config.channels, identities)]))
        header, sections = build_index(config.channels, listings, say)
        header["key"] = key
        merged = (key, catalogcache.section_image(header, sections))
    path = write_index(directory, published, failed, merged, catalogcache.FORMAT)
    say(f"catalog publish: {len(published)} of {len(config.channels)} channels in {path}")
    return report
