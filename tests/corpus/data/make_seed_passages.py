# Regenerates seed_passages.json: the seed article's passages (ids, offsets, paragraphs, section) from the chunker
# at commit 5212e13, for four chunker settings. Run once before changing the chunker; never after. (The 60,0
# setting was made again at chunker version 5: see the file's "note".)
import json, os
os.environ["HF_HUB_OFFLINE"]="1"
from rag.corpus.chunking import ChunkerParams, chunk_document
from rag.corpus.documents import load_document
from rag.encoding.torch_encoder import SentenceTransformerEncoder
from rag.encoding.model import resolve_model
from rag.config import PROJECT_ROOT
enc = SentenceTransformerEncoder(resolve_model("default"))
doc = load_document(PROJECT_ROOT/"seeds"/"permanent-revolution-1917-and-today.txt")
out = {}
for mt, mc in [(200,300),(130,300),(40,300),(60,0)]:
    ps = chunk_document(doc, enc.count_tokens, ChunkerParams(mt, mc))
    out[f"{mt},{mc}"] = [[p.id, p.start, p.end, list(p.paragraphs), p.section] for p in ps]
    print(mt, mc, len(ps))
json.dump({"document": doc.id, "passages": out}, open("tests/corpus/data/seed_passages.json","w"), indent=0)
