"""The JSON the fake Wikimedia services answer with, shaped like the real APIs' answers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from .wikimedia_world import FakeEntity, FakeFile


def json_response(data: dict[str, Any]) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json")


def api_error(code: str, info: str) -> dict[str, Any]:
    return {
        "error": {"code": code, "info": info, "*": "See the API help for usage."},
        "servedby": "mw-api-fake",
    }


def file_title(name: str) -> str:
    """MediaWiki title normalisation for files: ``File:``, spaces, first letter upper
    (one letter stays one: Wikimedia keeps ``ß``, where Python's upper() gives ``SS``)."""
    for prefix in ("File:", "Image:"):
        name = name.removeprefix(prefix)
    name = name.replace("_", " ").strip()
    first = name[:1].upper()
    return "File:" + (first if len(first) == 1 else name[:1]) + name[1:]


def page_id(name: str) -> int:
    return int(hashlib.md5(name.encode()).hexdigest()[:7], 16)


def search_hit(entity: FakeEntity, kind: str, term: str, base_url: str) -> dict[str, Any]:
    return {
        "id": entity.qid,
        "title": entity.qid,
        "pageid": int(entity.qid[1:]) + 100,
        "concepturi": f"http://www.wikidata.org/entity/{entity.qid}",
        "repository": "wikidata",
        "url": f"//www.wikidata.org/wiki/{entity.qid}",
        "display": {
            "label": {"value": entity.label, "language": "en"},
            "description": {"value": entity.description, "language": "en"},
        },
        "label": entity.label,
        "description": entity.description,
        "match": {"type": kind, "language": "en", "text": term},
        **({"aliases": [term]} if kind == "alias" else {}),
    }


def _statement(qid: str, prop: str, datavalue: dict[str, Any], datatype: str, rank: str = "normal") -> dict[str, Any]:
    snak_hash = hashlib.sha1(json.dumps(datavalue, sort_keys=True).encode()).hexdigest()
    return {
        "mainsnak": {
            "snaktype": "value",
            "property": prop,
            "hash": snak_hash,
            "datavalue": datavalue,
            "datatype": datatype,
        },
        "type": "statement",
        "id": f"{qid}${snak_hash[:8]}-{snak_hash[8:12]}-{snak_hash[12:16]}-{snak_hash[16:20]}-{snak_hash[20:32]}",
        "rank": rank,
    }


def _item_value(qid: str) -> dict[str, Any]:
    return {"value": {"entity-type": "item", "numeric-id": int(qid[1:]), "id": qid}, "type": "wikibase-entityid"}


def _sitelinks(entity: FakeEntity) -> dict[str, Any]:
    languages = ["en", "de", "fr", "es", "it", "pt", "ru", "ja", "zh", "ar", "nl", "pl", "sv", "uk", "fa"]
    projects = ["wiki", "wikiquote", "wikinews", "wikisource"]
    keys = [f"{lang}{proj}" for proj in projects for lang in languages]
    keys += [f"x{i}wiki" for i in range(max(0, entity.sitelinks - len(keys)))]
    return {key: {"site": key, "title": entity.label, "badges": []} for key in keys[: entity.sitelinks]}


def entity_json(entity: FakeEntity, props: set[str], languages: set[str] | None) -> dict[str, Any]:
    qid = entity.qid

    def lang_ok(lang: str) -> bool:
        return languages is None or lang in languages

    data: dict[str, Any] = {"type": "item", "id": qid}
    if "info" in props:
        data.update(
            pageid=int(qid[1:]) + 100, ns=0, title=qid, lastrevid=2_000_000_000, modified="2025-01-01T00:00:00Z"
        )
    if "labels" in props:
        data["labels"] = {"en": {"language": "en", "value": entity.label}} if lang_ok("en") else {}
    if "descriptions" in props:
        data["descriptions"] = {"en": {"language": "en", "value": entity.description}} if lang_ok("en") else {}
    if "aliases" in props:
        data["aliases"] = (
            {"en": [{"language": "en", "value": a} for a in entity.aliases]} if entity.aliases and lang_ok("en") else {}
        )
    if "claims" in props:
        claims: dict[str, list[dict[str, Any]]] = {
            "P31": [_statement(qid, "P31", _item_value(entity.instance_of), "wikibase-item")]
        }
        images = [(n, "deprecated") for n in entity.deprecated_images]
        images += [(n, "normal") for n in entity.images] + [(n, "preferred") for n in entity.preferred_images]
        if images:
            claims["P18"] = [
                _statement(qid, "P18", {"value": n, "type": "string"}, "commonsMedia", rank) for n, rank in images
            ]
        if entity.category:
            claims["P373"] = [_statement(qid, "P373", {"value": entity.category, "type": "string"}, "string")]
        if entity.occupations or entity.preferred_occupations:
            claims["P106"] = [
                _statement(qid, "P106", _item_value(q), "wikibase-item", rank)
                for qs, rank in ((entity.preferred_occupations, "preferred"), (entity.occupations, "normal"))
                for q in qs
            ]
        data["claims"] = claims
    if "sitelinks" in props:
        data["sitelinks"] = _sitelinks(entity)
    return data


def extmetadata(f: FakeFile) -> dict[str, Any]:
    """imageinfo's extmetadata for a file, entries shaped ``{"value", "source", "hidden"?}``."""
    meta: dict[str, Any] = {
        "DateTime": {"value": "2013-01-01 00:00:00", "source": "mediawiki-metadata", "hidden": ""},
        "ObjectName": {"value": f.name.rsplit(".", 1)[0], "source": "mediawiki-metadata", "hidden": ""},
        "Credit": {"value": f.credit_html, "source": "commons-desc-page", "hidden": ""},
        "LicenseShortName": {"value": f.license, "source": "commons-desc-page", "hidden": ""},
        "UsageTerms": {"value": f"Creative Commons {f.license}", "source": "commons-desc-page", "hidden": ""},
        "AttributionRequired": {
            "value": "false" if f.license_url is None else "true",
            "source": "commons-desc-page",
            "hidden": "",
        },
        "Restrictions": {"value": f.restrictions, "source": "commons-desc-page", "hidden": ""},
    }
    if f.artist_html:
        meta["Artist"] = {"value": f.artist_html, "source": "commons-desc-page"}
    if f.license_url:
        meta["LicenseUrl"] = {"value": f.license_url, "source": "commons-desc-page", "hidden": ""}
    return meta
