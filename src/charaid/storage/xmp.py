"""XMP sidecars: the names charaid found, where photo managers and booru tools read them.

A sidecar ``picture.jpg.xmp`` (or an existing ``picture.xmp``, which Immich and digiKam read
too) gets, for each named face:

- an MWG region (``mwg-rs:Regions``): the picture's dimensions (``AppliedToDimensions``) and,
  per face, its ``Area`` in normalised units with x and y at the box's centre, ``Type`` Face and
  ``Name`` (digiKam, Immich, Lightroom, exiftool read these);
- a Microsoft People region (``MP:RegionInfo``: ``Rectangle`` "x, y, w, h" from the top left,
  normalised, and ``PersonDisplayName``: Windows Photo Gallery, digiKam);
- the names as ``dc:subject`` keywords and ``Iptc4xmpExt:PersonInImage``.

An existing sidecar keeps every field it had: charaid removes only the regions and names it wrote
before (its regions carry ``charaid:Tagged``; the names it added are listed in ``charaid:Names``)
and adds today's. Pure XML: no picture is opened or written.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "charaid": "https://github.com/charaid/charaid/ns/1.0/",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
PACKET_END = '\n<?xpacket end="w"?>\n'


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


@dataclass(frozen=True)
class Region:
    """A named face: its box in pixels of a picture of ``size``."""

    #: None: a face region with no name (``charaid tag --unknown``)
    name: str | None
    box: tuple[int, int, int, int]  # x, y, w, h


def sidecar_path(picture: str | Path) -> Path:
    """Where a picture's sidecar is: an existing ``name.xmp`` if there is one (some tools write
    that form), else ``name.ext.xmp`` (digiKam's and Immich's default)."""
    p = Path(picture)
    short = p.with_suffix(".xmp")
    return short if short.is_file() and p.suffix.lower() != ".xmp" else p.with_name(p.name + ".xmp")


def _new_packet() -> ET.Element:
    meta = ET.Element(_q("x:xmpmeta"), {_q("x:xmptk"): "charaid"})
    rdf = ET.SubElement(meta, _q("rdf:RDF"))
    ET.SubElement(rdf, _q("rdf:Description"), {_q("rdf:about"): ""})
    return meta


def _parse(text: str | None) -> ET.Element:
    if not text:
        return _new_packet()
    body = text[text.find("<x:xmpmeta") :] if "<x:xmpmeta" in text else text[text.find("<rdf:RDF") :]
    root = ET.fromstring(body[: body.rfind(">") + 1].split("<?xpacket end")[0].strip())
    if root.tag == _q("rdf:RDF"):  # a bare RDF document: wrap it as a packet
        meta = ET.Element(_q("x:xmpmeta"))
        meta.append(root)
        root = meta
    if root.find(_q("rdf:RDF")) is None:
        raise ValueError("not an XMP packet (no rdf:RDF)")
    return root


def _description(meta: ET.Element, prop: str) -> ET.Element:
    """The rdf:Description holding ``prop``, else the first one (made if there is none)."""
    rdf = meta.find(_q("rdf:RDF"))
    assert rdf is not None
    descs = rdf.findall(_q("rdf:Description"))
    for d in descs:
        if d.find(_q(prop)) is not None:
            return d
    return descs[0] if descs else ET.SubElement(rdf, _q("rdf:Description"), {_q("rdf:about"): ""})


def _bag(parent: ET.Element, prop: str) -> ET.Element:
    """``parent``'s ``prop`` as an rdf:Bag (made when missing)."""
    el = parent.find(_q(prop))
    if el is None:
        el = ET.SubElement(parent, _q(prop))
    bag = el.find(_q("rdf:Bag"))
    if bag is None:
        bag = ET.SubElement(el, _q("rdf:Bag"))
    return bag


def _resource(parent: ET.Element, prop: str) -> ET.Element:
    el = parent.find(_q(prop))
    if el is None:
        el = ET.SubElement(parent, _q(prop), {_q("rdf:parseType"): "Resource"})
    return el


def _text(parent: ET.Element, prop: str, value: str) -> None:
    ET.SubElement(parent, _q(prop)).text = value


def _drop_ours(bag: ET.Element) -> None:
    for li in list(bag):
        if li.find(_q("charaid:Tagged")) is not None:
            bag.remove(li)


def _num(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".") or "0"


def merge(existing: str | None, size: tuple[int, int], regions: Sequence[Region]) -> str:
    """The sidecar ``existing`` (None: a new one) with charaid's regions and names replaced by
    ``regions`` of a picture of ``size`` (width, height); every other field kept."""
    meta = _parse(existing)
    w, h = size
    # -- MWG regions
    d = _description(meta, "mwg-rs:Regions")
    regs = _resource(d, "mwg-rs:Regions")
    dims = regs.find(_q("mwg-rs:AppliedToDimensions"))
    if dims is None:
        dims = ET.SubElement(regs, _q("mwg-rs:AppliedToDimensions"))
    for k in list(dims.attrib):
        del dims.attrib[k]
    for child in list(dims):
        dims.remove(child)
    dims.attrib.update({_q("stDim:w"): str(w), _q("stDim:h"): str(h), _q("stDim:unit"): "pixel"})
    mwg = _bag(regs, "mwg-rs:RegionList")
    _drop_ours(mwg)
    for r in regions:
        x, y, bw, bh = r.box
        li = ET.SubElement(mwg, _q("rdf:li"), {_q("rdf:parseType"): "Resource"})
        ET.SubElement(
            li,
            _q("mwg-rs:Area"),
            {
                _q("stArea:x"): _num((x + bw / 2) / w),
                _q("stArea:y"): _num((y + bh / 2) / h),
                _q("stArea:w"): _num(bw / w),
                _q("stArea:h"): _num(bh / h),
                _q("stArea:unit"): "normalized",
            },
        )
        if r.name:
            _text(li, "mwg-rs:Name", r.name)
        _text(li, "mwg-rs:Type", "Face")
        _text(li, "charaid:Tagged", "True")
    # -- Microsoft People regions
    d = _description(meta, "MP:RegionInfo")
    info = _resource(d, "MP:RegionInfo")
    mp = _bag(info, "MPRI:Regions")
    _drop_ours(mp)
    for r in regions:
        x, y, bw, bh = r.box
        li = ET.SubElement(mp, _q("rdf:li"), {_q("rdf:parseType"): "Resource"})
        _text(li, "MPReg:Rectangle", ", ".join(_num(v) for v in (x / w, y / h, bw / w, bh / h)))
        if r.name:
            _text(li, "MPReg:PersonDisplayName", r.name)
        _text(li, "charaid:Tagged", "True")
    # -- the names as keywords and persons shown, without the ones charaid added before
    d = _description(meta, "charaid:Names")
    ours = _bag(d, "charaid:Names")
    before = {li.text for li in ours}
    names = list(dict.fromkeys(r.name for r in regions if r.name))
    for prop in ("dc:subject", "Iptc4xmpExt:PersonInImage"):
        bag = _bag(_description(meta, prop), prop)
        kept = [li.text for li in bag if li.text not in before]
        for li in list(bag):
            bag.remove(li)
        for name in kept + [n for n in names if n not in kept]:
            ET.SubElement(bag, _q("rdf:li")).text = name
    for li in list(ours):
        ours.remove(li)
    for name in names:
        ET.SubElement(ours, _q("rdf:li")).text = name
    ET.indent(meta, space=" ")
    return PACKET_BEGIN + ET.tostring(meta, encoding="unicode") + PACKET_END


def read_names(text: str) -> list[str]:
    """The MWG region names of a sidecar (charaid's and others')."""
    meta = _parse(text)
    return [el.text or "" for el in meta.iter(_q("mwg-rs:Name"))]


def fingerprint(text: str) -> str:
    """What charaid wrote into a packet, blind to how another tool re-serialises it (exiftool
    rewrites a packet it puts in a PNG): its regions' names and areas, and its names."""
    meta = _parse(text)
    regions = []
    for li in meta.iter(_q("rdf:li")):
        if li.find(_q("charaid:Tagged")) is None or li.find(_q("mwg-rs:Area")) is None:
            continue
        area = li.find(_q("mwg-rs:Area"))
        assert area is not None
        name = li.find(_q("mwg-rs:Name"))
        coords = tuple(round(float(area.get(_q(f"stArea:{k}"), "nan")), 5) for k in "xywh")
        regions.append((name.text if name is not None else None, coords))
    names = [li.text for bag in meta.iter(_q("charaid:Names")) for li in bag.iter(_q("rdf:li"))]
    return repr((sorted(regions, key=repr), names))
