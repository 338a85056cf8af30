"""The status page's Atom feed (`/history.atom`, RFC 4287): one entry per incident and per
maintenance window of the Statuspage snapshot (monitor/statuspage.py), so it holds
exactly what the public page shows: names, statuses and the public updates.

Ids are stable ``urn:uuid:`` names (UUID 5 of the page's address or title and the
incident's id), so a feed reader never shows an entry twice; an entry's ``updated`` is
its last public update.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any

from monitor.statuspage import Snapshot

ATOM = "http://www.w3.org/2005/Atom"
#: characters XML 1.0 does not allow (a title from the config may hold them: TOML's \u0001)
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _id(namespace: uuid.UUID, name: str) -> str:
    return uuid.uuid5(namespace, name).urn


def atom(snap: Snapshot, base: str, title: str) -> bytes:
    """The feed as UTF-8 XML. `base` is the page's absolute address (no trailing /)."""
    ns = uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/status#{title}")
    feed = ET.Element("feed", xmlns=ATOM)
    ET.SubElement(feed, "id").text = _id(ns, "feed")
    ET.SubElement(feed, "title").text = title
    ET.SubElement(feed, "subtitle").text = "Incidents and maintenance"
    entries = [*map(_incident, snap.incidents), *map(_maintenance, snap.maintenances)]
    updated = max((e["updated"] for e in entries), default=snap.page()["updated_at"])
    ET.SubElement(feed, "updated").text = updated
    author = ET.SubElement(feed, "author")
    ET.SubElement(author, "name").text = title
    ET.SubElement(feed, "link", rel="self", type="application/atom+xml",
                  href=f"{base}/history.atom")  # fmt: skip
    ET.SubElement(feed, "link", rel="alternate", type="text/html", href=f"{base}/status")
    ET.SubElement(feed, "generator").text = "availmon"
    for e in sorted(entries, key=lambda e: e["updated"], reverse=True):
        entry = ET.SubElement(feed, "entry")
        ET.SubElement(entry, "id").text = _id(ns, e["key"])
        ET.SubElement(entry, "title").text = e["title"]
        ET.SubElement(entry, "updated").text = e["updated"]
        ET.SubElement(entry, "published").text = e["published"]
        ET.SubElement(entry, "link", rel="alternate", type="text/html",
                      href=f"{base}/status#{e['anchor']}")  # fmt: skip
        ET.SubElement(entry, "category", term=e["category"])
        ET.SubElement(entry, "summary", type="text").text = e["summary"]
        ET.SubElement(entry, "content", type="text").text = e["content"]
    for element in feed.iter():  # ElementTree writes them as they are: ill-formed XML
        if element.text:
            element.text = NOT_XML.sub("", element.text)
        for name, value in list(element.attrib.items()):
            element.set(name, NOT_XML.sub("", value))
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")


def _incident(i: dict[str, Any]) -> dict[str, Any]:
    lines = [f"{u['display_at']} — {u['status']}: {u['body']}" for u in i["incident_updates"]]
    return {
        "key": f"incident/{i['id']}",
        "anchor": f"incident-{i['id']}",
        "title": f"{i['name']} [{i['status']}]",
        "updated": i["updated_at"],
        "published": i["created_at"],
        "category": f"incident-{i['impact']}",
        "summary": f"{i['status']}; impact {i['impact']}",
        "content": "\n".join(lines) or i["status"],
    }


def _maintenance(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": f"maintenance/{m['id']}",
        "anchor": f"maintenance-{m['id']}",
        "title": f"{m['name']} [{m['status']}]",
        "updated": m["updated_at"],
        "published": m["created_at"],
        "category": "maintenance",
        "summary": f"{m['status']}: {m['scheduled_for']} to {m['scheduled_until']}",
        "content": f"Scheduled from {m['scheduled_for']} until {m['scheduled_until']}; "
        f"{m['status'].replace('_', ' ')}.",
    }
