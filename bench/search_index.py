#!/usr/bin/python3
"""The message search index (issue 18, revision 9e4f0a6b3c18), measured.

On a private PostgreSQL 15 (fsync on, the test harness's cluster), in two
databases, one with LC_CTYPE C (what tests/integration use) and one with
C.UTF-8 (what Debian's pg_createcluster gives on most systems: pg_trgm
makes trigrams of CJK characters only where the locale says they are
alphanumeric):

  - USERS users with ROWS messages between them, skewed as real users are
    (the n-th busiest user has ~ 1/sqrt(n) of the messages: with 1M
    messages the busiest has about 5,000, the median about 70), each
    message Traditional Chinese, English or both mixed, in a database set
    up by `convctl db setup` (head), whose search index is then dropped
    and replaced by each candidate in turn;
  - for each candidate index: its size, the time to build it, the cost of
    writing (inserts of 512-row batches, as convd's group commit sends
    them, against no search index), and the latency of the search query
    convd sends (an unnamed statement, as convd sends it: planned
    for its user and pattern) for QUERIES
    (user, query) pairs: Chinese 1, 2 and 4 characters, English words and
    phrases, mixed, and words that are not there; random users and the
    100 busiest users, reported separately.

Usage (after building in ./build): bench/search_index.py [--rows 1000000]
       [--users 10000] [--queries 2000] [--variants none,trgm,composite,fts]
       [--ctypes C,C.UTF-8] [--detail]
Prints Markdown tables (BENCHMARKS.md keeps the latest).  Needs
python3-psycopg2.  Takes about 20 minutes for 1M rows on two cores.
"""

import argparse
import os
import random
import signal
import statistics
import sys
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("CONVD_BUILDDIR", os.path.join(HERE, "..", "build"))
from benchlib import pct  # noqa: E402

H = "simple_conversation_history"

ZH_WORDS = (
    "今天 明天 昨天 早上 晚上 天氣 下雨 颱風 台北 台中 高雄 台南 新竹 花蓮 捷運 "
    "高鐵 火車 公車 機車 便當 珍珠奶茶 牛肉麵 滷肉飯 小籠包 夜市 咖啡 早餐 午餐 "
    "晚餐 朋友 家人 媽媽 爸爸 老師 學生 同事 老闆 公司 學校 醫院 銀行 郵局 超商 "
    "電話 手機 電腦 網路 訊息 帳號 密碼 登入 註冊 付款 訂單 退貨 發票 優惠 折扣 "
    "價格 預約 取消 時間 地址 資料 問題 答案 幫忙 謝謝 不好意思 沒關係 請問 可以 "
    "應該 需要 希望 覺得 知道 喜歡 工作 會議 報告 專案 進度 計畫 旅行 飯店 機票 "
    "行李 護照 簽證 健康 運動 跑步 游泳 籃球 棒球 電影 音樂 書店 圖書館 颱風假 "
    "聖誕節 過年 紅包 中秋節 月餅 端午節 粽子 颱風天 停車場 加油站 客服 人工智慧 "
    "機器人 聊天 翻譯 天氣預報 溫度 濕度 空氣品質 地震 停電 維修 保固 退款 運費"
).split()
ZH_FILL = list("的了是在我你他她們這那有不也就都很會要說來去好嗎呢吧啊和與或但")
EN_WORDS = (
    "the a to and of in is it you that for on with this my can your be are "
    "please thanks hello order refund payment account password login weather "
    "tomorrow today meeting project report schedule flight hotel ticket "
    "booking cancel price discount invoice delivery address phone number "
    "email support question answer help problem error server database "
    "python javascript function deploy docker kubernetes release version "
    "bug feature request response token model prompt context window search "
    "message history conversation user assistant system tool result call "
    "restaurant coffee breakfast lunch dinner train station airport taxi "
    "weekend holiday birthday music movie book library hospital doctor "
    "insurance contract salary budget invoice receipt warranty repair"
).split()
MIXED_TERMS = ["LINE", "Python", "API", "iPhone", "Google", "ChatGPT", "bug",
               "deploy", "email", "PDF", "Excel", "Wi-Fi", "App", "email",
               "Uber Eats", "Netflix", "YouTube", "OK", "meeting", "demo"]


def zh_sentence(rng, n):
    out = []
    for _ in range(n):
        out.append(rng.choice(ZH_WORDS))
        if rng.random() < 0.6:
            out.append(rng.choice(ZH_FILL))
    s = "".join(out)
    return s + rng.choice("。！？，")


def en_sentence(rng, n):
    w = [rng.choice(EN_WORDS) for _ in range(n)]
    w[0] = w[0].capitalize()
    return " ".join(w) + rng.choice(".!?")


def mixed_sentence(rng, n):
    out = []
    for _ in range(n):
        if rng.random() < 0.3:
            out.append(" " + rng.choice(MIXED_TERMS) + " ")
        else:
            out.append(rng.choice(ZH_WORDS))
    return "".join(out).strip() + "。"


def message(rng):
    k = rng.random()
    parts = rng.randint(1, 4)
    if k < 0.45:
        return " ".join(zh_sentence(rng, rng.randint(3, 12))
                        for _ in range(parts))
    if k < 0.8:
        return " ".join(en_sentence(rng, rng.randint(4, 16))
                        for _ in range(parts))
    return " ".join(mixed_sentence(rng, rng.randint(3, 10))
                    for _ in range(parts))


def user_counts(users, rows):
    w = [1.0 / (i + 1) ** 0.5 for i in range(users)]
    s = sum(w)
    counts = [max(1, int(rows * x / s)) for x in w]
    counts[-1] += rows - sum(counts)
    return counts


# The candidates.  `composite` is what revision 9e4f0a6b3c18 makes.
VARIANTS = {
    "none": [],
    "trgm": [f"CREATE INDEX {H}_search_idx ON {H}"
             " USING gin (content gin_trgm_ops)"],
    "composite": [f"CREATE INDEX {H}_search_idx ON {H}"
                  " USING gin (user_id, content gin_trgm_ops)"],
    "fts": [f"CREATE INDEX {H}_search_idx ON {H}"
            " USING gin (to_tsvector('simple', content))"],
}

# The statement convd prepares (src/search.c), and for fts its equivalent.
# The statement convd sends (src/search.c), and for fts its equivalent.
# The matches are gathered first (MATERIALIZED), then the newest taken:
# otherwise the planner may walk the whole table's created_at index
# newest first and filter, hoping for 20 matches soon (for a rare word
# it reads the table).
SEARCH = (f"WITH m AS MATERIALIZED (SELECT id, created_at FROM {H}"
          " WHERE user_id = $1 AND platform = $2 AND content ILIKE $3)"
          " SELECT id, created_at FROM m"
          " ORDER BY created_at DESC, id DESC LIMIT 20")
# A query without a trigram (src/search.c): the text is no index key.
SEARCH_SHORT = SEARCH.replace("content ILIKE $3", "content || '' ILIKE $3")


def has_trigram(q):
    """src/search.c's search_has_trigram."""
    run = 0
    for ch in q:
        if ord(ch) >= 0x80 or ch.isascii() and ch.isalnum():
            run += 1
            if run >= 3:
                return True
        else:
            run = 0
    return False


SEARCH_FTS = (f"WITH m AS MATERIALIZED (SELECT id, created_at FROM {H}"
              " WHERE user_id = $1 AND platform = $2"
              " AND to_tsvector('simple', content)"
              " @@ phraseto_tsquery('simple', $3))"
              " SELECT id, created_at FROM m"
              " ORDER BY created_at DESC, id DESC LIMIT 20")


def load(cur, users, rows, seed=18):
    """The messages, into the history table `convctl db setup` made."""
    rng = random.Random(seed)
    counts = user_counts(users, rows)
    providers = ["openai", "anthropic", "gemini"]
    t0 = time.time()
    buf = []
    base = 1700000000
    n = 0
    import io
    for u, c in enumerate(counts):
        prov = providers[u % 3]
        t = base + rng.randint(0, 3600 * 24 * 300)
        for i in range(c):
            t += rng.randint(5, 3600)
            role = "user" if i % 2 == 0 else "assistant"
            text = message(rng).replace("\\", "\\\\").replace("\t", " ")
            buf.append(f"U{u:05d}\tline\t{prov}\t{role}\t{text}\t"
                       f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t))}+00\n")
            n += 1
        if len(buf) >= 50000 or u == len(counts) - 1:
            cur.copy_expert(f"COPY {H} (user_id, platform, model_provider,"
                            " role, content, created_at) FROM STDIN",
                            io.StringIO("".join(buf)))
            buf = []
    cur.execute(f"ANALYZE {H}")
    return n, time.time() - t0, counts


def queries(rng, counts, n):
    """(user, query, kind) triples."""
    kinds = {
        "zh-1": lambda: rng.choice(rng.choice(ZH_WORDS)),
        "zh-2": lambda: rng.choice([w for w in ZH_WORDS if len(w) == 2]),
        "zh-4": lambda: rng.choice([w for w in ZH_WORDS if len(w) >= 3]) +
        rng.choice(ZH_FILL),
        "en-word": lambda: rng.choice(EN_WORDS[20:]),
        "en-phrase": lambda: " ".join(rng.choice(EN_WORDS[20:])
                                       for _ in range(2)),
        "mixed": lambda: rng.choice(MIXED_TERMS),
        "absent": lambda: rng.choice(["量子糾纏", "xylophone", "蘋果派 recipe",
                                      "zzqx"]),
    }
    names = list(kinds)
    out = []
    for i in range(n):
        kind = names[i % len(names)]
        if i % 2 == 0:
            u = rng.randrange(len(counts))
        else:
            u = rng.randrange(100)      # the busiest users
        out.append((f"U{u:05d}", kinds[kind](), kind, u < 100))
    return out


def like_pattern(q):
    """The ILIKE pattern convd sends: the query with \\, % and _ escaped,
    between two %."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace(
        "_", "\\_") + "%"


def measure(conn, qs, fts):
    cur = conn.cursor()
    # convd sends the search as an unnamed statement: planned with the
    # user and the pattern it is given (a prepared statement's generic
    # plan cannot tell a 1-character query from a 10-character one)
    def sql_for(q):
        text = SEARCH_FTS if fts else SEARCH if has_trigram(q) \
            else SEARCH_SHORT
        return text.replace("$1", "%s").replace("$2", "'line'").replace(
            "$3", "%s")
    lat = {}
    found = []
    for rep in range(2):            # the first pass warms the cache
        for (u, q, kind, busy) in qs:
            t = time.perf_counter()
            cur.execute(sql_for(q), (u, q if fts else like_pattern(q)))
            rows = cur.fetchall()
            d = (time.perf_counter() - t) * 1000
            if rep == 1:
                found.append([r[0] for r in rows])
            if rep == 1:
                lat.setdefault(("busy" if busy else "random", kind),
                               []).append(d)
                lat.setdefault(("busy" if busy else "random", "all"),
                               []).append(d)
                lat.setdefault(("all", "all"), []).append(d)
    return lat, found


def write_cost(conn, batches=40):
    """Inserts of 512-row batches (as convd's group commit), each its own
    transaction: rows per second."""
    rng = random.Random(7)
    cur = conn.cursor()
    rows = [(f"W{rng.randrange(10000):05d}", message(rng))
            for _ in range(512 * batches)]
    cur.execute("SELECT pg_current_wal_lsn()")
    lsn0 = cur.fetchone()[0]
    conn.commit()
    t = time.perf_counter()
    for b in range(batches):
        chunk = rows[b * 512:(b + 1) * 512]
        cur.execute(f"INSERT INTO {H} (user_id, platform, model_provider,"
                    " role, content) SELECT * FROM unnest(%s::text[],"
                    " %s::text[], %s::text[], %s::text[], %s::text[])",
                    ([c[0] for c in chunk], ["line"] * 512,
                     ["openai"] * 512, ["user"] * 512,
                     [c[1] for c in chunk]))
        conn.commit()
    el = time.perf_counter() - t
    cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn0,))
    wal = float(cur.fetchone()[0])
    cur.execute(f"DELETE FROM {H} WHERE user_id LIKE 'W%'")
    conn.commit()
    return 512 * batches / el, wal / (512 * batches)


def size_mb(cur, name):
    cur.execute("SELECT pg_relation_size(%s::regclass)", (name,))
    return cur.fetchone()[0] / 1048576


def run_db(dsn, args, out):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SHOW lc_ctype")
    ctype = cur.fetchone()[0]
    n, secs, counts = load(cur, args.users, args.rows)
    cur.execute("SELECT pg_size_pretty(pg_relation_size(%s)),"
                " pg_relation_size(%s)", (H, H))
    tsize = cur.fetchone()
    print(f"\n### lc_ctype {ctype}: {n} rows, {args.users} users "
          f"(busiest {counts[0]}, median {sorted(counts)[len(counts)//2]}),"
          f" table {tsize[0]}, loaded in {secs:.0f} s\n", file=out)
    qs = queries(random.Random(1), counts, args.queries)
    print("| index | size | build | insert rows/s | WAL bytes/row "
          "| p50 ms | p99 ms "
          "| p99 busiest 100 | worst kind (p99) | same rows as a scan |",
          file=out)
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
          file=out)
    conn.autocommit = False
    truth = None
    for v in args.variants.split(","):
        cur = conn.cursor()
        cur.execute(f"DROP INDEX IF EXISTS {H}_search_idx")
        conn.commit()
        t = time.perf_counter()
        for stmt in VARIANTS[v]:
            cur.execute(stmt)
        conn.commit()
        build = time.perf_counter() - t
        cur.execute(f"ANALYZE {H}")
        conn.commit()
        sz = size_mb(cur, f"{H}_search_idx") if VARIANTS[v] else 0.0
        conn.commit()
        conn.autocommit = True
        lat, found = measure(conn, qs, v == "fts")
        if truth is None and v != "fts":
            truth = found       # the first variant's (a plain scan's)
        same = sum(1 for a, b in zip(found, truth or found) if a == b)
        conn.autocommit = False
        wr, walrow = write_cost(conn)
        a = lat[("all", "all")]
        busy = lat[("busy", "all")]
        kinds = {(g, k): pct(x, 99) for (g, k), x in lat.items()
                 if g != "all" and k != "all"}
        worst = max(kinds, key=kinds.get)
        print(f"| {v} | {sz:.0f} MB | {build:.0f} s | {wr:,.0f} | {walrow:,.0f} "
              f"| {pct(a, 50):.2f} | {pct(a, 99):.2f} | {pct(busy, 99):.2f} "
              f"| {worst[0]} {worst[1]} {kinds[worst]:.1f} "
              f"| {same}/{len(found)} |", file=out)
        out.flush()
        if args.detail:
            for key in sorted(lat):
                x = lat[key]
                print(f"  {v} {key[0]:6} {key[1]:9} n={len(x):5} "
                      f"p50={pct(x, 50):7.2f} p99={pct(x, 99):7.2f} "
                      f"max={max(x):7.2f}", file=sys.stderr)
    conn.close()


def main():
    # a SIGTERM ends the run through the finally below (the cluster goes)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--variants", default="none,trgm,composite,fts")
    ap.add_argument("--ctypes", default="C,C.UTF-8")
    ap.add_argument("--detail", action="store_true",
                    help="per query kind on stderr")
    args = ap.parse_args()
    import convdtest
    pg = convdtest.PgCluster()
    pg.initdb("fsync = on\nshared_buffers = 256MB\nmax_wal_size = 4GB\n")
    pg.start()
    admin = f"host={pg.sockdir} port={pg.port} user=postgres dbname=postgres"
    try:
        for i, ctype in enumerate(args.ctypes.split(",")):
            db = f"convd_search_{i}"
            pg.psql(f"CREATE DATABASE {db} TEMPLATE template0 ENCODING"
                    f" 'UTF8' LC_COLLATE 'C' LC_CTYPE '{ctype}'",
                    db="postgres")
            convdtest.setup_schema(pg, dbname=db)
            run_db(admin.replace("dbname=postgres", f"dbname={db}"), args,
                   sys.stdout)
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
