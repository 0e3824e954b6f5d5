/*
 * The revision of an etcd snapshot, found in one pass over its bbolt stream (snapshot/bolt.h,
 * docs/format.md "The revision of an etcd snapshot").
 *
 * Pages arrive in page-id order, not tree order, so every page-size slot is summarized as it goes
 * by and the trees are walked at the end, from the meta page:
 *   root bucket --"key"--> bucket "key": rightmost path to its newest revision
 *               --"meta"-> bucket "meta": finishedCompactRev, scheduledCompactRev, consistent_index
 * Summaries kept: per branch page the children those lookups take (brec); per leaf page its last
 * revision when >= min_rev, and whatever it holds of the looked-up names (lrec, ents); two bits per
 * slot (a valid leaf was here; it was dropped because its revision is below min_rev).
 *
 * Every slot is a potential page start: free pages may hold anything, including stale pages whose
 * overflow counts cover live pages. A slot whose header has overflow pages is parsed once its whole
 * extent has passed (kept in the window, at most DR_BOLT_MAX_EXTENT), or, when larger, read for its
 * last key only (struct big). Nothing found in a page is trusted unless the final walk reaches it.
 *
 * Stream states: HEAD (collecting the meta pages) -> DB (slots 0 .. hwm-1) -> TRAILER (at most
 * 32 bytes) ; any error is sticky.
 *
 * What it must never do: read outside a page's extent or the bytes given, let garbage allocate
 * without bound (records grow with the stream, the window is capped), or print page contents.
 */
#include "snapshot/bolt.h"
#include "drd/core/core.h"
#include "drd/lib/boltfile/boltfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    PAGE_HDR = 16,
    ELEM = 16,
    META_OFF = PAGE_HDR,
    META_SUM_LEN = 56, /* bytes of the meta covered by its checksum */
    META_LEN = 64,
    BUCKET_HDR = 16,
    F_BRANCH = 0x01,
    F_LEAF = 0x02,
    F_BUCKET = 0x01, /* leaf element flag: the value is a bucket */
    TRAILER = 32,
    MAX_DEPTH = 32,
    MAX_BIG = 256,
    MIN_PAGE = 512,
    MAX_PAGE = 1 << 20,
    HEAD_SCAN = 65536 + PAGE_HDR + META_LEN,   /* enough to find meta 1 when meta 0 is bad */
    HEAD_MAX = MAX_PAGE + PAGE_HDR + META_LEN, /* enough to read meta 1 after meta 0 */
};

#define BOLT_MAGIC 0xED0CDAEDu
#define BOLT_VERSION 2u

/* The names the walk looks up. T_LAST is "the rightmost child". */
enum { T_LAST, T_KEY, T_META, T_CI, T_FIN, T_SCHED, NT };
static const struct {
    const char *name;
    size_t len;
} tname[NT] = {
    {"", 0},
    {"key", 3},
    {"meta", 4},
    {"consistent_index", 16},
    {"finishedCompactRev", 18},
    {"scheduledCompactRev", 19},
};

/* what a leaf holds of the looked-up names (bits of leafsum.has) */
enum {
    H_KEY = 1 << 0,        /* bucket "key": key_root, or inline (H_KEY_INLINE) */
    H_KEY_INLINE = 1 << 1, /* inline bucket "key": H_KEY_LAST or H_KEY_EMPTY */
    H_KEY_LAST = 1 << 2,
    H_KEY_EMPTY = 1 << 3,
    H_META = 1 << 4, /* bucket "meta": meta_root, or inline (H_META_INLINE, values in val[1]) */
    H_META_INLINE = 1 << 5,
    H_VAL = 1 << 6, /* H_VAL << (3*which + k): value k (0 ci, 1 fin, 2 sched) of val[which] */
};
#define HAS_VAL(which, k) (H_VAL << (3 * (which) + (k)))

typedef struct leafsum {
    unsigned count;
    int has_last; /* the last key is a revision */
    int64_t last; /* its main revision */
    unsigned has;
    uint64_t key_root, meta_root;
    int64_t key_last;
    uint64_t val[2][3]; /* [0] this leaf's own, [1] its inline "meta" bucket's */
} leafsum;

typedef struct brec { /* a branch page: the child each lookup takes */
    uint64_t id;
    uint64_t child[NT];
} brec;

enum { L_LEAF = 1, L_PARTIAL, L_TOOBIG };
typedef struct lrec {
    uint64_t id;
    int64_t last; /* L_LEAF/L_PARTIAL with has_last: main revision; L_TOOBIG: extent bytes */
    uint8_t kind;
    uint8_t has_last;
    uint8_t empty;
    uint32_t ent; /* index into ents, or NO_ENT */
} lrec;
#define NO_ENT UINT32_MAX

typedef struct ents { /* a leaf that holds looked-up names */
    unsigned has;
    uint64_t key_root, meta_root;
    int64_t key_last;
    uint64_t val[2][3];
} ents;

typedef struct pend { /* a page with overflow pages, waiting for its last byte */
    uint64_t id, start, end;
} pend;

typedef struct big { /* an oversized leaf: only its last key is read */
    uint64_t id, start, end;
    uint64_t need; /* stream offset of the bytes wanted next */
    uint32_t need_len;
    int phase; /* 0: the last element, 1: its key */
} big;

struct dr_bolt_scan {
    int64_t min_rev;
    int err;
    char errmsg[240];
    uint64_t pos; /* stream bytes taken */
    /* meta */
    int have_meta;
    uint32_t ps;
    uint64_t hwm, db_end, root, txid;
    /* window: stream bytes [win_off, win_off + win_len) */
    uint8_t *win;
    size_t win_len, win_cap;
    uint64_t win_off;
    pend *pend;
    size_t npend, cpend;
    big *big;
    size_t nbig, cbig;
    /* summaries */
    brec *br;
    size_t nbr, cbr;
    lrec *lr;
    size_t nlr, clr;
    ents *en;
    size_t nen, cen;
    uint8_t *bits; /* 2 bits per slot: 1 valid leaf, 2 pruned (below min_rev) */
    size_t bits_cap;
    int sorted;
    uint64_t buffered, oversized;
    size_t mem, peak;
};

/* ---- errors and memory ---- */

static int fail(dr_bolt_scan *s, int code, const char *fmt, ...) DR_PRINTF(3, 4);
static int fail(dr_bolt_scan *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    s->err = code;
    return dr_error_set(code, "%s", s->errmsg);
}

/* Grows *p (an array of elem-size items with capacity *cap) to hold n items. */
static int grow(dr_bolt_scan *s, void **p, size_t *cap, size_t n, size_t elem)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;
    if (n <= *cap)
        return 0;
    while (ncap < n)
        ncap *= 2;
    np = realloc(*p, ncap * elem);
    if (!np)
        return fail(s, DR_ENOMEM, "out of memory (snapshot scan, %zu bytes)", ncap * elem);
    s->mem += (ncap - *cap) * elem;
    if (s->mem > s->peak)
        s->peak = s->mem;
    *p = np;
    *cap = ncap;
    return 0;
}

/* ---- byte access ---- */

#define le16 dr_bolt_le16
#define le32 dr_bolt_le32
#define le64 dr_bolt_le64
#define be64 dr_bolt_be64

/* etcd's revision key: 8-byte big-endian main, '_', 8-byte sub, optional 't' (tombstone). */
static int rev_key(const uint8_t *k, size_t n, int64_t *main_rev)
{
    uint64_t m;
    if ((n != 17 && n != 18) || k[8] != '_' || (n == 18 && k[17] != 't'))
        return 0;
    m = be64(k);
    if (m > INT64_MAX)
        return 0;
    *main_rev = (int64_t)m;
    return 1;
}

/* bbolt's order: bytewise, then shorter first. */
static int key_cmp(const uint8_t *k, size_t n, int t)
{
    size_t m = n < tname[t].len ? n : tname[t].len;
    int c = memcmp(k, tname[t].name, m);
    if (c)
        return c;
    return n < tname[t].len ? -1 : n > tname[t].len;
}

/* ---- page parsing (p points at a page header, len bytes of its extent are present) ---- */

/* A branch page. Returns 0 when valid. */
static int parse_branch(const uint8_t *p, uint64_t len, brec *out)
{
    unsigned count = le16(p + 10);
    if (!count || PAGE_HDR + (uint64_t)count * ELEM > len)
        return -1;
    for (int t = 0; t < NT; t++)
        out->child[t] = le64(p + PAGE_HDR + 8);
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = p + PAGE_HDR + (size_t)i * ELEM;
        uint64_t off = PAGE_HDR + (uint64_t)i * ELEM + le32(e), ksize = le32(e + 4);
        if (off + ksize > len)
            return -1;
        out->child[T_LAST] = le64(e + 8);
        /* bbolt's search: the last element whose key is <= the name, else the first */
        for (int t = 1; t < NT; t++)
            if (i > 0 && key_cmp(p + off, ksize, t) <= 0)
                out->child[t] = le64(e + 8);
    }
    return 0;
}

/* A leaf page; inline (a bucket's page inside its parent's value) looks for no buckets. */
static int parse_leaf(const uint8_t *p, uint64_t len, int is_inline, leafsum *out)
{
    unsigned count;
    memset(out, 0, sizeof *out);
    if (len < PAGE_HDR || !(le16(p + 8) & F_LEAF))
        return -1;
    count = le16(p + 10);
    if (PAGE_HDR + (uint64_t)count * ELEM > len)
        return -1;
    out->count = count;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = p + PAGE_HDR + (size_t)i * ELEM;
        uint32_t flags = le32(e);
        uint64_t off = PAGE_HDR + (uint64_t)i * ELEM + le32(e + 4);
        uint64_t ksize = le32(e + 8), vsize = le32(e + 12);
        const uint8_t *k = p + off, *v = k + ksize;
        if (off + ksize + vsize > len)
            return -1;
        if (i == count - 1)
            out->has_last = rev_key(k, ksize, &out->last);
        if (flags & F_BUCKET) {
            int t = ksize == 3 && !memcmp(k, "key", 3)    ? T_KEY
                    : ksize == 4 && !memcmp(k, "meta", 4) ? T_META
                                                          : -1;
            leafsum in;
            if (t < 0 || is_inline)
                continue;
            if (vsize < BUCKET_HDR)
                return -1;
            if (t == T_KEY) {
                out->has |= H_KEY;
                out->key_root = le64(v);
            } else {
                out->has |= H_META;
                out->meta_root = le64(v);
            }
            if (le64(v))
                continue;
            if (parse_leaf(v + BUCKET_HDR, vsize - BUCKET_HDR, 1, &in) < 0)
                return -1;
            if (t == T_KEY) {
                out->has |= H_KEY_INLINE;
                if (!in.count)
                    out->has |= H_KEY_EMPTY;
                else if (in.has_last) {
                    out->has |= H_KEY_LAST;
                    out->key_last = in.last;
                }
            } else {
                out->has |= H_META_INLINE;
                for (int j = 0; j < 3; j++)
                    if (in.has & HAS_VAL(0, j)) {
                        out->has |= HAS_VAL(1, j);
                        out->val[1][j] = in.val[0][j];
                    }
            }
        } else {
            for (int j = 0; j < 3; j++) {
                int t = T_CI + j;
                if (ksize != tname[t].len || memcmp(k, tname[t].name, ksize))
                    continue;
                /* consistent_index: 8 bytes; the compact revisions: a 17-byte revision */
                if (vsize != (j ? 17u : 8u))
                    return -1;
                out->val[0][j] = be64(v);
                if (j && out->val[0][j] > INT64_MAX)
                    return -1;
                out->has |= HAS_VAL(0, j);
            }
        }
    }
    return 0;
}

/* ---- summaries ---- */

static int bits_set(dr_bolt_scan *s, uint64_t id, unsigned bit)
{
    size_t byte = (size_t)(id / 4);
    if (byte >= s->bits_cap) {
        size_t old = s->bits_cap;
        int rc = grow(s, (void **)&s->bits, &s->bits_cap, byte + 1, 1);
        if (rc < 0)
            return rc;
        memset(s->bits + old, 0, s->bits_cap - old);
    }
    s->bits[byte] |= (uint8_t)(bit << (2 * (id % 4)));
    return 0;
}

static unsigned bits_get(const dr_bolt_scan *s, uint64_t id)
{
    size_t byte = (size_t)(id / 4);
    return byte < s->bits_cap ? (s->bits[byte] >> (2 * (id % 4))) & 3u : 0;
}

static int add_lrec(dr_bolt_scan *s, const lrec *r)
{
    int rc = grow(s, (void **)&s->lr, &s->clr, s->nlr + 1, sizeof *s->lr);
    if (rc < 0)
        return rc;
    s->lr[s->nlr++] = *r;
    s->sorted = 0;
    return 0;
}

static int record_leaf(dr_bolt_scan *s, uint64_t id, const leafsum *ls)
{
    lrec r = {.id = id, .kind = L_LEAF, .ent = NO_ENT};
    int rc = bits_set(s, id, 1);
    if (rc < 0)
        return rc;
    r.has_last = (uint8_t)ls->has_last;
    r.last = ls->last;
    r.empty = !ls->count;
    if (ls->has) {
        ents *e;
        if ((rc = grow(s, (void **)&s->en, &s->cen, s->nen + 1, sizeof *s->en)) < 0)
            return rc;
        e = &s->en[s->nen];
        e->has = ls->has;
        e->key_root = ls->key_root;
        e->meta_root = ls->meta_root;
        e->key_last = ls->key_last;
        memcpy(e->val, ls->val, sizeof e->val);
        r.ent = (uint32_t)s->nen++;
    } else if (ls->count && !(ls->has_last && ls->last >= s->min_rev)) {
        /* nothing the walk can use: an older leaf of bucket "key", or another bucket's */
        return ls->has_last ? bits_set(s, id, 2) : 0;
    }
    return add_lrec(s, &r);
}

/* A whole page (extent bytes at p). Invalid pages are left out: the walk fails if it needs one. */
static int parse_page(dr_bolt_scan *s, uint64_t id, const uint8_t *p, uint64_t len)
{
    int rc = 0;
    if (le16(p + 8) == F_BRANCH) {
        brec b = {.id = id};
        if (parse_branch(p, len, &b) < 0)
            return 0;
        if ((rc = grow(s, (void **)&s->br, &s->cbr, s->nbr + 1, sizeof *s->br)) < 0)
            return rc;
        s->br[s->nbr++] = b;
        s->sorted = 0;
    } else {
        leafsum ls;
        if (parse_leaf(p, len, 0, &ls) < 0)
            return 0;
        rc = record_leaf(s, id, &ls);
    }
    return rc;
}

/* A slot's page-size bytes, at a page boundary of the stream. */
static int do_slot(dr_bolt_scan *s, uint64_t i, const uint8_t *p)
{
    uint16_t flags = le16(p + 8);
    unsigned count = le16(p + 10);
    uint64_t overflow = le32(p + 12), extent, start = i * s->ps;
    int rc;
    if (i < 2 || le64(p) != i || (flags != F_BRANCH && flags != F_LEAF))
        return 0;
    if (overflow == 0)
        return parse_page(s, i, p, s->ps);
    if (overflow >= s->hwm - i) /* it would reach past the end: not a page of this database */
        return 0;
    extent = (overflow + 1) * s->ps;
    if (extent <= DR_BOLT_MAX_EXTENT) {
        if ((rc = grow(s, (void **)&s->pend, &s->cpend, s->npend + 1, sizeof *s->pend)) < 0)
            return rc;
        s->pend[s->npend++] = (pend){.id = i, .start = start, .end = start + extent};
        return 0;
    }
    s->oversized++;
    if (flags == F_LEAF && count && PAGE_HDR + (uint64_t)count * ELEM <= extent &&
        s->nbig < MAX_BIG) {
        if ((rc = grow(s, (void **)&s->big, &s->cbig, s->nbig + 1, sizeof *s->big)) < 0)
            return rc;
        s->big[s->nbig++] = (big){.id = i,
                                  .start = start,
                                  .end = start + extent,
                                  .need = start + PAGE_HDR + (uint64_t)(count - 1) * ELEM,
                                  .need_len = ELEM};
        return 0;
    }
    return add_lrec(s, &(lrec){.id = i, .kind = L_TOOBIG, .last = (int64_t)extent, .ent = NO_ENT});
}

/* Completes what the window now covers (it ends at s->pos). */
static int service(dr_bolt_scan *s)
{
    int rc = 0;
    for (size_t j = 0; j < s->npend;) {
        pend *q = &s->pend[j];
        if (q->end > s->pos) {
            j++;
            continue;
        }
        s->buffered++;
        if ((rc = parse_page(s, q->id, s->win + (q->start - s->win_off), q->end - q->start)) < 0)
            return rc;
        s->pend[j] = s->pend[--s->npend];
    }
    for (size_t j = 0; j < s->nbig;) {
        big *b = &s->big[j];
        int done = 0;
        while (!done && b->need + b->need_len <= s->pos) {
            const uint8_t *p = s->win + (b->need - s->win_off);
            if (b->phase == 0) {
                uint64_t key = b->need + le32(p + 4), ksize = le32(p + 8), vsize = le32(p + 12);
                /* only a revision key is of use; the key and value must lie in the extent */
                if (ksize > 64 || key + ksize + vsize > b->end || key < b->need + ELEM) {
                    done = 1;
                } else {
                    b->phase = 1;
                    b->need = key;
                    b->need_len = (uint32_t)ksize;
                }
            } else {
                lrec r = {.id = b->id, .kind = L_PARTIAL, .ent = NO_ENT};
                int64_t m = 0;
                done = 1;
                r.has_last = (uint8_t)rev_key(p, b->need_len, &m);
                r.last = m;
                if ((rc = bits_set(s, b->id, 1)) < 0)
                    return rc;
                if (r.has_last && m < s->min_rev)
                    rc = bits_set(s, b->id, 2);
                else
                    rc = add_lrec(s, &r);
                if (rc < 0)
                    return rc;
            }
        }
        if (done)
            s->big[j] = s->big[--s->nbig];
        else
            j++;
    }
    return 0;
}

/* Drops window bytes nothing needs any more. */
static void trim(dr_bolt_scan *s)
{
    uint64_t keep = s->pos - s->pos % s->ps, drop;
    for (size_t j = 0; j < s->npend; j++)
        if (s->pend[j].start < keep)
            keep = s->pend[j].start;
    for (size_t j = 0; j < s->nbig; j++)
        if (s->big[j].need < keep)
            keep = s->big[j].need;
    if (keep <= s->win_off)
        return;
    drop = keep - s->win_off;
    /* move only when it is cheap relative to what was dropped, or the window is full */
    if (drop < s->win_len && drop < s->win_len - drop && s->win_len < DR_BOLT_MAX_EXTENT)
        return;
    memmove(s->win, s->win + drop, s->win_len - drop);
    s->win_len -= drop;
    s->win_off = keep;
}

static int win_append(dr_bolt_scan *s, const void *data, size_t n)
{
    size_t need = s->win_len + n;
    if (need > s->win_cap) {
        /* doubling, but not past what the window can need: the largest buffered extent plus
         * the slot being read */
        size_t ncap = s->win_cap ? 2 * s->win_cap : 65536;
        size_t top = DR_BOLT_MAX_EXTENT + 2 * (size_t)(s->ps ? s->ps : MAX_PAGE);
        uint8_t *nw;
        if (ncap > top)
            ncap = top;
        if (ncap < need)
            ncap = need;
        if (!(nw = realloc(s->win, ncap)))
            return fail(s, DR_ENOMEM, "out of memory (snapshot scan window, %zu bytes)", ncap);
        s->mem += ncap - s->win_cap;
        if (s->mem > s->peak)
            s->peak = s->mem;
        s->win = nw;
        s->win_cap = ncap;
    }
    memcpy(s->win + s->win_len, data, n);
    s->win_len += n;
    return 0;
}

/* ---- meta ---- */

typedef struct meta {
    uint32_t ps;
    uint64_t root, freelist, hwm, txid;
} meta;

/* The meta page at p (avail bytes present). bbolt's validate, plus sanity for a stream. */
static int meta_ok(const uint8_t *p, size_t avail, meta *m)
{
    const uint8_t *q;
    uint64_t sum;
    if (avail < META_OFF + META_LEN) /* p may be NULL then (an empty stream) */
        return 0;
    q = p + META_OFF;
    if (le32(q) != BOLT_MAGIC || le32(q + 4) != BOLT_VERSION)
        return 0;
    sum = le64(q + META_SUM_LEN);
    if (sum != 0 && sum != dr_bolt_meta_sum(q))
        return 0;
    m->ps = le32(q + 8);
    m->root = le64(q + 16);
    m->freelist = le64(q + 32);
    m->hwm = le64(q + 40);
    m->txid = le64(q + 48);
    if (m->ps < MIN_PAGE || m->ps > MAX_PAGE || (m->ps & (m->ps - 1)))
        return 0;
    if (m->hwm < 3 || m->hwm > UINT64_MAX / m->ps / 2 || m->root < 2 || m->root >= m->hwm)
        return 0;
    return 1;
}

/* Picks the meta from the head bytes in the window; final: no more bytes will come.
 * Returns 1 when chosen, 0 when more bytes are needed, <0 on error. */
static int choose_meta(dr_bolt_scan *s, int final)
{
    meta m0, m1, *m = NULL;
    int ok0 = meta_ok(s->win, s->win_len, &m0), ok1 = 0;
    if (ok0) {
        if (s->win_len < (size_t)m0.ps + META_OFF + META_LEN && !final)
            return 0;
        ok1 = s->win_len > m0.ps && meta_ok(s->win + m0.ps, s->win_len - m0.ps, &m1) &&
              m1.ps == m0.ps;
        m = ok1 && m1.txid > m0.txid ? &m1 : &m0;
    } else {
        if (s->win_len < HEAD_SCAN && !final)
            return 0;
        for (uint32_t ps = MIN_PAGE; ps <= 65536 && !m; ps *= 2)
            if (s->win_len > ps && meta_ok(s->win + ps, s->win_len - ps, &m1) && m1.ps == ps)
                m = &m1;
    }
    if (!m) {
        if (s->win_len < META_OFF + META_LEN)
            return fail(s, DR_EPROTO,
                        "snapshot stream is not a bbolt database: it ends after %zu bytes",
                        s->win_len);
        return fail(s, DR_EPROTO, "snapshot stream is not a bbolt database: no valid meta page");
    }
    s->ps = m->ps;
    s->hwm = m->hwm;
    s->db_end = m->hwm * m->ps;
    s->root = m->root;
    s->txid = m->txid;
    s->have_meta = 1;
    return 1;
}

/* ---- the stream ---- */

static int feed_db(dr_bolt_scan *s, const uint8_t *d, size_t len)
{
    int rc = 0;
    while (len) {
        uint64_t slot_start, slot_end;
        size_t k;
        if (s->pos >= s->db_end) {
            if (len > TRAILER || s->pos - s->db_end > TRAILER - len)
                return fail(s, DR_EPROTO,
                            "snapshot stream has more than %d bytes after the end of its %llu-byte "
                            "database (a bbolt file and a sha256 trailer expected)",
                            TRAILER, (unsigned long long)s->db_end);
            s->pos += len;
            return 0;
        }
        slot_start = s->pos - s->pos % s->ps;
        slot_end = slot_start + s->ps;
        if (!s->win_len && !s->npend && !s->nbig && len >= s->ps && s->pos == slot_start) {
            /* fast path: a whole slot straight from the caller's bytes */
            uint64_t i = slot_start / s->ps;
            s->pos = slot_end;
            if ((rc = do_slot(s, i, d)) < 0)
                return rc;
            if (s->npend || s->nbig) {
                s->win_off = slot_start;
                if ((rc = win_append(s, d, s->ps)) < 0 || (rc = service(s)) < 0)
                    return rc;
                trim(s);
            }
            d += s->ps;
            len -= s->ps;
            continue;
        }
        if (!s->win_len)
            s->win_off = s->pos;
        k = slot_end - s->pos < len ? (size_t)(slot_end - s->pos) : len;
        if ((rc = win_append(s, d, k)) < 0)
            return rc;
        s->pos += k;
        d += k;
        len -= k;
        if (s->pos == slot_end) {
            if ((rc = do_slot(s, slot_start / s->ps, s->win + (slot_start - s->win_off))) < 0)
                return rc;
            if ((rc = service(s)) < 0)
                return rc;
            trim(s);
        }
    }
    return 0;
}

/* HEAD: collects bytes until the meta page can be chosen (final: no more will come), then
 * replays them as slots. */
static int feed_head(dr_bolt_scan *s, const uint8_t *d, size_t len, int final)
{
    int rc = 0;
    while ((len || final) && !s->have_meta) {
        size_t k = HEAD_MAX - s->win_len < len ? HEAD_MAX - s->win_len : len;
        uint8_t *head;
        size_t hn;
        if (k) {
            if ((rc = win_append(s, d, k)) < 0)
                return rc;
            d += k;
            len -= k;
        }
        if ((rc = choose_meta(s, final)) < 0)
            return rc;
        if (!rc && final)
            break;
        if (!rc)
            continue;
        head = s->win;
        hn = s->win_len;
        s->win = NULL;
        s->mem -= s->win_cap;
        s->win_len = s->win_cap = 0;
        rc = feed_db(s, head, hn);
        free(head);
        if (rc < 0)
            return rc;
    }
    return len ? feed_db(s, d, len) : 0;
}

int dr_bolt_scan_feed(dr_bolt_scan *s, const void *data, size_t len)
{
    if (s->err)
        return dr_error_set(s->err, "%s", s->errmsg);
    if (s->have_meta)
        return feed_db(s, data, len);
    return feed_head(s, data, len, 0);
}

/* ---- the walk ---- */

static int cmp_brec(const void *a, const void *b)
{
    uint64_t x = ((const brec *)a)->id, y = ((const brec *)b)->id;
    return x < y ? -1 : x > y;
}

static int cmp_lrec(const void *a, const void *b)
{
    uint64_t x = ((const lrec *)a)->id, y = ((const lrec *)b)->id;
    return x < y ? -1 : x > y;
}

/* Follows the lookup for name t from page id down to a leaf of bucket what. *leaf is the leaf's
 * record, or NULL for a valid leaf that was not kept (then *pruned says whether its revision was
 * below min_rev); *depth the levels walked. */
static int descend(dr_bolt_scan *s, uint64_t id, int t, const char *what, const lrec **leaf,
                   int *pruned, int *depth)
{
    *leaf = NULL;
    *pruned = 0;
    for (*depth = 0; *depth < MAX_DEPTH; (*depth)++) {
        brec bk = {.id = id};
        lrec lk = {.id = id};
        const brec *b;
        unsigned bits;
        if (id < 2 || id >= s->hwm)
            return fail(s, DR_EPROTO,
                        "bucket '%s' refers to page %llu outside the database (%llu pages)", what,
                        (unsigned long long)id, (unsigned long long)s->hwm);
        if (s->nbr && (b = bsearch(&bk, s->br, s->nbr, sizeof *s->br, cmp_brec))) {
            id = b->child[t];
            continue;
        }
        if (s->nlr && (*leaf = bsearch(&lk, s->lr, s->nlr, sizeof *s->lr, cmp_lrec))) {
            if ((*leaf)->kind == L_TOOBIG)
                return fail(s, DR_EPROTO,
                            "page %llu of bucket '%s' spans %lld bytes, more than the %u the "
                            "snapshot scan buffers",
                            (unsigned long long)id, what, (long long)(*leaf)->last,
                            DR_BOLT_MAX_EXTENT);
            return 0;
        }
        bits = bits_get(s, id);
        if (!(bits & 1))
            return fail(s, DR_EPROTO, "page %llu of bucket '%s' is not a valid page",
                        (unsigned long long)id, what);
        *pruned = (bits & 2) != 0;
        return 0;
    }
    return fail(s, DR_EPROTO, "bucket '%s' is deeper than %d levels (cycle?)", what, MAX_DEPTH);
}

/* The entry of the root bucket for bucket name t ("key" or "meta"). */
static int root_entry(dr_bolt_scan *s, int t, const ents **out)
{
    const lrec *l;
    int pruned, depth, rc = descend(s, s->root, t, "(root)", &l, &pruned, &depth);
    unsigned want = t == T_KEY ? H_KEY : H_META;
    if (rc < 0)
        return rc;
    if (l && l->kind == L_PARTIAL)
        return fail(s, DR_EPROTO, "root bucket page %llu is larger than the scan buffers",
                    (unsigned long long)l->id);
    if (!l || l->ent == NO_ENT || !(s->en[l->ent].has & want))
        return fail(s, DR_EPROTO, "snapshot database has no bucket '%s' (not an etcd backend)",
                    tname[t].name);
    *out = &s->en[l->ent];
    return 0;
}

int dr_bolt_scan_result(dr_bolt_scan *s, dr_bolt_result *out)
{
    const ents *ke, *me;
    int64_t key_rev = -1, comp[2] = {0, 0};
    uint64_t ci = 0;
    uint64_t extra;
    int rc, oversized = 0;
    memset(out, 0, sizeof *out);
    if (s->err)
        return dr_error_set(s->err, "%s", s->errmsg);
    if (!s->have_meta && (rc = feed_head(s, NULL, 0, 1)) < 0)
        return rc;
    if (s->pos < s->db_end)
        return fail(s, DR_EPROTO, "snapshot stream truncated: %llu of %llu database bytes",
                    (unsigned long long)s->pos, (unsigned long long)s->db_end);
    extra = s->pos - s->db_end;
    if (extra != 0 && extra != TRAILER)
        return fail(s, DR_EPROTO,
                    "snapshot stream ends inside its sha256 trailer (%llu of %d bytes)",
                    (unsigned long long)extra, TRAILER);
    if (!s->sorted) {
        if (s->nbr)
            qsort(s->br, s->nbr, sizeof *s->br, cmp_brec);
        if (s->nlr)
            qsort(s->lr, s->nlr, sizeof *s->lr, cmp_lrec);
        s->sorted = 1;
    }
    if ((rc = root_entry(s, T_KEY, &ke)) < 0 || (rc = root_entry(s, T_META, &me)) < 0)
        return rc;

    /* bucket "key": its newest entry */
    if (ke->has & H_KEY_INLINE) {
        if (ke->has & H_KEY_EMPTY)
            key_rev = 0;
        else if (ke->has & H_KEY_LAST)
            key_rev = ke->key_last;
        else
            return fail(s, DR_EPROTO, "bucket 'key' holds a key that is not a revision");
    } else {
        const lrec *l;
        int pruned, depth;
        if ((rc = descend(s, ke->key_root, T_LAST, "key", &l, &pruned, &depth)) < 0)
            return rc;
        if (l && l->has_last) {
            key_rev = l->last;
            oversized = l->kind == L_PARTIAL;
        } else if (l && l->empty && depth == 0) {
            key_rev = 0;
        } else if (l || !pruned) {
            return fail(s, DR_EPROTO, "last page of bucket 'key' does not end with a revision");
        }
    }

    /* bucket "meta": the compact revisions and the consistent index */
    for (int j = 0; j < 3; j++) {
        uint64_t v = 0;
        if (me->has & H_META_INLINE) {
            if (me->has & HAS_VAL(1, j))
                v = me->val[1][j];
        } else {
            const lrec *l;
            int pruned, depth;
            if ((rc = descend(s, me->meta_root, T_CI + j, "meta", &l, &pruned, &depth)) < 0)
                return rc;
            if (l && l->kind == L_PARTIAL)
                return fail(s, DR_EPROTO,
                            "page %llu of bucket 'meta' is larger than the scan "
                            "buffers",
                            (unsigned long long)l->id);
            if (l && l->ent != NO_ENT && (s->en[l->ent].has & HAS_VAL(0, j)))
                v = s->en[l->ent].val[0][j];
        }
        if (j == 0)
            ci = v;
        else
            comp[j - 1] = (int64_t)v;
    }

    out->revision = key_rev > 1 ? key_rev : 1;
    for (int j = 0; j < 2; j++)
        if (comp[j] > out->revision)
            out->revision = comp[j];
    if (key_rev < 0 && out->revision < s->min_rev)
        return fail(
            s, DR_EPROTO,
            "cannot tell the snapshot's revision: the newest entry of bucket 'key' is below "
            "min revision %lld, which is above the compact revision %lld (is min_rev from "
            "another member?)",
            (long long)s->min_rev, (long long)out->revision);
    out->key_revision = key_rev;
    out->compact_revision = comp[0];
    out->scheduled_compact_revision = comp[1];
    out->consistent_index = ci;
    out->txid = s->txid;
    out->page_size = s->ps;
    out->db_size = s->db_end;
    out->has_trailer = extra == TRAILER;
    out->branch_pages = s->nbr;
    out->leaf_records = s->nlr;
    out->buffered_extents = s->buffered;
    out->oversized_extents = s->oversized;
    out->key_leaf_oversized = oversized;
    out->peak_mem = s->peak;
    return 0;
}

int dr_bolt_scan_new(int64_t min_rev, dr_bolt_scan **out)
{
    dr_bolt_scan *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->min_rev = min_rev > 0 ? min_rev : 0;
    s->mem = s->peak = sizeof *s;
    *out = s;
    return 0;
}

void dr_bolt_scan_free(dr_bolt_scan *s)
{
    if (!s)
        return;
    free(s->win);
    free(s->pend);
    free(s->big);
    free(s->br);
    free(s->lr);
    free(s->en);
    free(s->bits);
    free(s);
}
