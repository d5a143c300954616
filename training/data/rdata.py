"""Minimal reader for R's lazy-load databases (`data/Rdata.rdx` + `Rdata.rdb`).

Only what R data packages of plain text need: XDR serialization (format 2 or 3) of
character/integer/logical/double vectors, lists and pairlists with attributes.
This avoids installing R to read `r-cran-janeaustenr` and `r-cran-tokenizers`.
"""
import gzip
import struct
import sys
import zlib

NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 0, 1, 2, 9, 10, 13, 14, 16, 19
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP = 255, 254, 253, 242, 241
NA_INTEGER = -2147483648


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.refs: list = []

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise ValueError("R serialization: unexpected end of data")
        self.pos += n
        return chunk

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def header(self) -> None:
        if self.take(2) != b"X\n":
            raise ValueError("R serialization: only XDR format is supported")
        version = self.int()
        self.int()  # writer R version
        self.int()  # minimal reader version
        if version == 3:
            self.take(self.int())  # native encoding name
        elif version != 2:
            raise ValueError(f"R serialization: unsupported version {version}")

    def item(self):
        flags = self.int()
        kind = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if kind in (NILVALUE_SXP, NILSXP, GLOBALENV_SXP, EMPTYENV_SXP, BASEENV_SXP):
            return None
        if kind == REFSXP:
            index = flags >> 8
            if index == 0:
                index = self.int()
            return self.refs[index - 1]
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self.take(n)
            # bit 12 of the flags marks a Latin-1 string; everything else here is UTF-8/ASCII
            return raw.decode("latin-1" if flags & (1 << 12) else "utf-8")
        if kind == LISTSXP:
            items = []
            while kind == LISTSXP:
                attr = self.item() if has_attr else None
                tag = self.item() if has_tag else None
                items.append((tag, self.item()))
                flags = self.int()
                kind = flags & 0xFF
                has_attr = bool(flags & (1 << 9))
                has_tag = bool(flags & (1 << 10))
            if kind not in (NILVALUE_SXP, NILSXP):
                raise ValueError(f"R serialization: pairlist ends with type {kind}")
            return dict(items) if all(t is not None for t, _ in items) else [v for _, v in items]
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            values = list(struct.unpack(f">{n}i", self.take(4 * n)))
            value = [None if v == NA_INTEGER else v for v in values]
        elif kind == REALSXP:
            n = self.length()
            value = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif kind == STRSXP:
            value = [self.item() for _ in range(self.length())]
        elif kind == VECSXP:
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"R serialization: unsupported SEXP type {kind}")
        attributes = self.item() if has_attr else None
        if kind == VECSXP and isinstance(attributes, dict) and "names" in attributes:
            return dict(zip(attributes["names"], value))  # named list
        return value


def unserialize(data: bytes):
    reader = Reader(data)
    reader.header()
    return reader.item()


def load_lazy_db(rdx_path: str) -> dict:
    """Returns {object name: value} for every object in an R lazy-load database."""
    index = unserialize(gzip.decompress(open(rdx_path, "rb").read()))
    variables = index["variables"]
    blob = open(rdx_path[:-4] + ".rdb", "rb").read()
    objects = {}
    for name, (offset, size) in variables.items():
        chunk = blob[int(offset):int(offset) + int(size)]
        expected = struct.unpack(">I", chunk[:4])[0]
        payload = zlib.decompress(chunk[4:])
        if len(payload) != expected:
            raise ValueError(f"{rdx_path}: object {name}: size mismatch")
        objects[name] = unserialize(payload)
    return objects


if __name__ == "__main__":
    for name, value in load_lazy_db(sys.argv[1]).items():
        shape = f"{len(value)} items" if isinstance(value, list) else type(value).__name__
        print(name, shape)
