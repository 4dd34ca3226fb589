"""A substantial, deterministic Python workload for allocator tests: run with
PYTHONMALLOC=malloc so every object goes through malloc. Prints digests only."""
import hashlib, json, random, re, threading, zlib, collections

rng = random.Random(12345)
out = []

# Dicts, lists, sets and strings of many sizes, built and torn down repeatedly.
for rnd in range(6):
    d = {f"k{i}-{rnd}": [rng.random() for _ in range(i % 17)] for i in range(40000)}
    s = set(k for k in d if len(d[k]) % 3 == 0)
    text = " ".join(f"{k}:{len(v)}" for k, v in d.items())
    out.append(len(d) + len(s) + len(text))
    del d, s, text

# JSON round trips of nested structures.
doc = {"items": [{"id": i, "tags": ["t%d" % (i % 13)] * (i % 5), "v": i * 0.5} for i in range(60000)]}
blob = json.dumps(doc, sort_keys=True)
back = json.loads(blob)
out.append(hashlib.sha256(blob.encode()).hexdigest()[:16])
out.append(sum(item["id"] for item in back["items"]))

# Sorting, regular expressions, compression.
words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 12))) for _ in range(200000)]
words.sort()
counts = collections.Counter(w[:2] for w in words)
out.append(counts.most_common(3))
pattern = re.compile(r"(a+)(b|c)(d*)")
out.append(sum(1 for w in words if pattern.search(w)))
packed = zlib.compress(" ".join(words).encode(), 6)
out.append(len(zlib.decompress(packed)))

# Threads allocating at once (the GIL still switches between them inside allocations).
results = [None] * 4
def work(n):
    acc = []
    for i in range(60000):
        acc.append(("x" * (i % 300), i, [i] * (i % 7)))
        if len(acc) > 5000:
            acc = acc[2500:]
    results[n] = sum(len(a[0]) for a in acc)
threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads: t.start()
for t in threads: t.join()
out.append(results)

print(json.dumps(out))
