"""Minimal readers for VTK polygon files, without importing vtk (core stays GUI/vtk-free).

Supported: legacy ``.vtk`` POLYDATA (ASCII, and BINARY big-endian) with POINTS and POLYGONS
(or TRIANGLE_STRIPS), and XML ``.vtp`` PolyData whose Points and Polys arrays are
``ascii``, ``binary`` (base64, uncompressed or zlib-compressed) or ``appended`` (raw or
base64). Polygons with more than three corners are fan-triangulated. Anything else gives a
``ValueError`` that says what was not understood. This covers what mesh tools
(ParaView, 3D Slicer, pyvista) write by default; for other variants convert to PLY or STL.
"""

from __future__ import annotations

import base64
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np

_VTK_DTYPES = {
    "float": ">f4", "double": ">f8", "int": ">i4", "long": ">i8", "unsigned_int": ">u4",
    "vtkidtype": ">i4", "vtktypeint64": ">i8", "vtktypeint32": ">i4", "short": ">i2", "unsigned_short": ">u2", "unsigned_char": "u1", "char": "i1",
}
_XML_DTYPES = {
    "Float32": "f4", "Float64": "f8", "Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2",
    "Int32": "i4", "UInt32": "u4", "Int64": "i8", "UInt64": "u8",
}


def _fan(cells: list[np.ndarray]) -> np.ndarray:
    tris = []
    for c in cells:
        for k in range(1, len(c) - 1):
            tris.append((c[0], c[k], c[k + 1]))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def _strips(cells: list[np.ndarray]) -> np.ndarray:
    tris = []
    for c in cells:
        for k in range(len(c) - 2):
            a, b, d = c[k], c[k + 1], c[k + 2]
            tris.append((a, b, d) if k % 2 == 0 else (b, a, d))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def _split_cells(flat: np.ndarray) -> list[np.ndarray]:
    cells, i = [], 0
    n = len(flat)
    while i < n:
        k = int(flat[i])
        if k < 0 or i + 1 + k > n:
            raise ValueError("cell list is truncated or corrupt")
        cells.append(flat[i + 1 : i + 1 + k])
        i += 1 + k
    return cells


def read_legacy_vtk(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a legacy-format POLYDATA ``.vtk`` file into (vertices, triangles)."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n", 4)
    if len(lines) < 4 or not lines[0].startswith(b"# vtk DataFile"):
        raise ValueError("not a legacy VTK file (no '# vtk DataFile' header)")
    fmt = lines[2].strip().upper()
    if fmt not in (b"ASCII", b"BINARY"):
        raise ValueError(f"unknown legacy VTK format {fmt.decode(errors='replace')!r}")
    body = lines[3] + b"\n" + (lines[4] if len(lines) > 4 else b"")
    if b"POLYDATA" not in body.split(b"\n", 1)[0].upper():
        raise ValueError("only DATASET POLYDATA is supported")
    pos = body.index(b"\n") + 1
    points = None
    tris: list[np.ndarray] = []

    def next_line() -> bytes:
        nonlocal pos
        while pos < len(body):
            end = body.find(b"\n", pos)
            end = len(body) if end < 0 else end
            line = body[pos:end].strip()
            pos = end + 1
            if line:
                return line
        return b""

    def read_values(count: int, dtype: str) -> np.ndarray:
        nonlocal pos
        if fmt == b"ASCII":
            vals: list[str] = []
            while len(vals) < count:
                line = next_line()
                if not line:
                    raise ValueError("file ends inside a data block")
                vals.extend(line.decode().split())
            if len(vals) != count:
                raise ValueError("data block has the wrong number of values")
            return np.asarray(vals, dtype=float if dtype[-2] == "f" else np.int64)
        size = np.dtype(dtype).itemsize * count
        arr = np.frombuffer(body[pos : pos + size], dtype=dtype)
        if len(arr) != count:
            raise ValueError("binary data block is truncated")
        pos += size
        return arr

    while True:
        line = next_line()
        if not line:
            break
        words = line.decode(errors="replace").split()
        key = words[0].upper()
        if key == "POINTS":
            n, typ = int(words[1]), words[2].lower()
            points = read_values(3 * n, _VTK_DTYPES.get(typ, ">f4")).astype(float).reshape(n, 3)
        elif key in ("POLYGONS", "TRIANGLE_STRIPS", "VERTICES", "LINES"):
            n1, n2 = int(words[1]), int(words[2])
            save = pos
            nxt = next_line().decode(errors="replace").split()
            if nxt and nxt[0].upper() == "OFFSETS":  # VTK 5.1 layout: offsets then connectivity
                offs = np.asarray(read_values(n1, _VTK_DTYPES.get(nxt[1].lower(), ">i8")), dtype=np.int64)
                cw = next_line().decode(errors="replace").split()
                if not cw or cw[0].upper() != "CONNECTIVITY":
                    raise ValueError("OFFSETS without CONNECTIVITY")
                conn = np.asarray(read_values(n2, _VTK_DTYPES.get(cw[1].lower(), ">i8")), dtype=np.int64)
                cells = [conn[a:b] for a, b in zip(offs[:-1], offs[1:])]
            else:
                pos = save
                flat = read_values(n2, ">i4")
                cells = _split_cells(np.asarray(flat, dtype=np.int64))
            if key == "POLYGONS":
                tris.append(_fan(cells))
            elif key == "TRIANGLE_STRIPS":
                tris.append(_strips(cells))
        elif key == "METADATA":  # informational block that ends at a blank line
            while pos < len(body):
                end = body.find(b"\n", pos)
                end = len(body) if end < 0 else end
                line = body[pos:end].strip()
                pos = end + 1
                if not line:
                    break
        elif key in ("POINT_DATA", "CELL_DATA", "METADATA", "FIELD"):
            break  # attributes follow; geometry is complete
        else:
            raise ValueError(f"unexpected legacy VTK section {words[0]!r}")
    if points is None:
        raise ValueError("no POINTS section")
    faces = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
    return points, faces


def _xml_array(el: ET.Element, byte_order: str, header_type: str, compressed: bool, appended: bytes | None,
               appended_encoding: str) -> np.ndarray:
    dtype = np.dtype(_XML_DTYPES[el.get("type", "Float32")]).newbyteorder("<" if byte_order == "LittleEndian" else ">")
    htype = np.dtype({"UInt32": "u4", "UInt64": "u8"}[header_type]).newbyteorder(dtype.byteorder if dtype.byteorder != "|" else "<")
    fmt = el.get("format", "ascii")
    if fmt == "ascii":
        return np.asarray((el.text or "").split(), dtype=dtype.newbyteorder("="))

    def decode_block(raw: bytes, b64: bool) -> bytes:
        # raw is the byte stream starting at this array's header
        if not compressed:
            if b64:
                hdr = base64.b64decode(raw[: 4 * ((htype.itemsize + 2) // 3)])
                n = int(np.frombuffer(hdr[: htype.itemsize], htype)[0])
                full = base64.b64decode(raw[: 4 * ((htype.itemsize + n + 2) // 3)])
                return full[htype.itemsize : htype.itemsize + n]
            n = int(np.frombuffer(raw[: htype.itemsize], htype)[0])
            return raw[htype.itemsize : htype.itemsize + n]
        # compressed: header [nblocks, blocksize, lastsize, csize_1..csize_n]
        hs = htype.itemsize
        if b64:
            # the header and the data are encoded separately in inline binary
            first = base64.b64decode(raw[: 4 * ((3 * hs + 2) // 3)])
            nb = int(np.frombuffer(first[:hs], htype)[0])
            hlen = (3 + nb) * hs
            hb64 = 4 * ((hlen + 2) // 3)
            header = np.frombuffer(base64.b64decode(raw[:hb64])[:hlen], htype)
            payload = base64.b64decode(raw[hb64:])
        else:
            nb = int(np.frombuffer(raw[:hs], htype)[0])
            hlen = (3 + nb) * hs
            header = np.frombuffer(raw[:hlen], htype)
            payload = raw[hlen:]
        out, off = [], 0
        for c in header[3:]:
            out.append(zlib.decompress(payload[off : off + int(c)]))
            off += int(c)
        return b"".join(out)

    if fmt == "binary":
        raw = re.sub(rb"\s+", b"", (el.text or "").encode())
        buf = decode_block(raw, True)
    elif fmt == "appended":
        if appended is None:
            raise ValueError("array refers to AppendedData but the file has none")
        off = int(el.get("offset", "0"))
        b64 = appended_encoding == "base64"
        buf = decode_block(appended[off:], b64)
    else:
        raise ValueError(f"unknown DataArray format {fmt!r}")
    return np.frombuffer(buf, dtype=dtype).astype(dtype.newbyteorder("="))


def read_vtp(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an XML PolyData ``.vtp`` file into (vertices, triangles)."""
    data = Path(path).read_bytes()
    appended = None
    enc = "raw"
    m = re.search(rb"<AppendedData[^>]*encoding=\"(\w+)\"[^>]*>", data)
    if m:
        enc = m.group(1).decode()
        start = data.index(b"_", m.end()) + 1
        end = data.rfind(b"</AppendedData>")
        appended = data[start:end]
        if enc == "base64":
            appended = re.sub(rb"\s+", b"", appended)
        data = data[: m.end()] + b"</AppendedData></VTKFile>"  # the XML part only
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"not a readable VTK XML file ({e})") from None
    if root.tag != "VTKFile" or root.get("type") != "PolyData":
        raise ValueError("not a VTK XML PolyData file")
    bo = root.get("byte_order", "LittleEndian")
    ht = root.get("header_type", "UInt32")
    comp = root.get("compressor") is not None
    if comp and "ZLib" not in root.get("compressor", ""):
        raise ValueError(f"compressor {root.get('compressor')} is not supported (only zlib)")
    verts_all, faces_all, base = [], [], 0
    for piece in root.iter("Piece"):
        pts_el = piece.find("Points/DataArray")
        if pts_el is None:
            raise ValueError("Piece without Points")
        pts = _xml_array(pts_el, bo, ht, comp, appended, enc).astype(float).reshape(-1, 3)
        tris = []
        for tag, conv in (("Polys", _fan), ("Strips", _strips)):
            cell = piece.find(tag)
            if cell is None:
                continue
            arrs = {a.get("Name"): a for a in cell.findall("DataArray")}
            if "connectivity" not in arrs or "offsets" not in arrs:
                raise ValueError(f"{tag} without connectivity/offsets arrays")
            conn = _xml_array(arrs["connectivity"], bo, ht, comp, appended, enc).astype(np.int64)
            offs = _xml_array(arrs["offsets"], bo, ht, comp, appended, enc).astype(np.int64)
            starts = np.concatenate([[0], offs[:-1]])
            tris.append(conv([conn[a:b] for a, b in zip(starts, offs)]))
        f = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
        verts_all.append(pts)
        faces_all.append(f + base)
        base += len(pts)
    if not verts_all:
        raise ValueError("no Piece in the PolyData file")
    return np.concatenate(verts_all), np.concatenate(faces_all)


def write_legacy_vtk_ascii(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a small ASCII legacy POLYDATA file (used in tests and docs examples)."""
    lines = ["# vtk DataFile Version 4.2", "imssim", "ASCII", "DATASET POLYDATA", f"POINTS {len(vertices)} float"]
    lines += [f"{x:.6g} {y:.6g} {z:.6g}" for x, y, z in vertices]
    lines.append(f"POLYGONS {len(faces)} {4 * len(faces)}")
    lines += [f"3 {a} {b} {c}" for a, b, c in faces]
    Path(path).write_text("\n".join(lines) + "\n")


def write_vtp(path: str | Path, vertices: np.ndarray, faces: np.ndarray, fmt: str = "binary") -> None:
    """Write a PolyData ``.vtp`` with ``ascii``, inline ``binary`` (base64) or ``appended`` (base64) arrays."""
    arrays = [("Float32", np.asarray(vertices, "<f4").ravel(), 3, None),
              ("Int64", np.asarray(faces, "<i8").ravel(), 1, "connectivity"),
              ("Int64", (np.arange(1, len(faces) + 1) * 3).astype("<i8"), 1, "offsets")]
    appended = b""
    els = []
    for typ, arr, nc, name in arrays:
        attr = f'type="{typ}"' + (f' Name="{name}"' if name else "") + (f' NumberOfComponents="{nc}"' if nc > 1 else "")
        if fmt == "ascii":
            els.append(f'<DataArray {attr} format="ascii">{" ".join(map(str, arr.tolist()))}</DataArray>')
        else:
            blob = base64.b64encode(struct.pack("<I", arr.nbytes) + arr.tobytes())
            if fmt == "binary":
                els.append(f'<DataArray {attr} format="binary">{blob.decode()}</DataArray>')
            else:
                els.append(f'<DataArray {attr} format="appended" offset="{len(appended)}"/>')
                appended += blob
    xml = (f'<?xml version="1.0"?>\n<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" header_type="UInt32">'
           f'<PolyData><Piece NumberOfPoints="{len(vertices)}" NumberOfPolys="{len(faces)}">'
           f"<Points>{els[0]}</Points><Polys>{els[1]}{els[2]}</Polys></Piece></PolyData>")
    if fmt == "appended":
        xml += f'<AppendedData encoding="base64">_{appended.decode()}</AppendedData>'
    xml += "</VTKFile>\n"
    Path(path).write_text(xml)
