/*
 * Connected components of every threshold level of a map, in one sweep per connectivity.
 *
 * A map is given as a level image: pixel p is foreground at threshold index j (0 <= j < n_levels) when
 * level[p] > j, so the foreground shrinks as j grows and the sets are nested. Rather than labelling every
 * threshold separately (what a per-threshold OpenCV loop does), pixels are added in order of decreasing level
 * to a union-find over components; each component keeps its box and a few counts, and a "record" is written
 * whenever a component changes. A record is valid for a contiguous range of thresholds, so all components at
 * all thresholds cost one pass over the pixels plus one record per component tree node.
 *
 * Two sweeps serve the box metrics:
 *   - foreground, 8-connected (what OpenCV traces as outer contours), levels descending;
 *   - background, 4-connected, levels ascending, with the 1-pixel frame around the image as one "exterior"
 *     component: background components that never reach the frame are the holes OpenCV traces as hole
 *     contours (findContours pads the image with zeros, so the frame is background).
 *
 * Per foreground component the sweep also keeps two window counts over the 2x2 pixel windows it touches:
 *   - twice the area of the polygon through its boundary pixel centres when it has no holes: a window with 4
 *     component pixels adds 1 (2 in doubled units), one with 3 adds 1/2 (1). This equals cv2.contourArea of
 *     the component's outer contour (checked against OpenCV in the tests);
 *   - 4 x its Euler number (8-connectivity bit quads, Gray 1971): windows with 1 pixel add 1, with 3 pixels
 *     subtract 1, with 2 diagonal pixels subtract 2. 1 - Euler number is the number of holes.
 * A component with holes encloses them in its outer contour, so its contour area is only bounded:
 * doubled area >= counted area + 4 per hole (a hole adds at least its pixels' four half windows) and
 * <= 2 (w - 1)(h - 1) (the polygon lies in the box through the extreme pixel centres).
 *
 * The caller gets, per threshold, the best IoU of the chosen box ("single": the largest component) and of any
 * box ("multi": every component, plus every hole in reference mode) against the ground-truth boxes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { OK = 0, ERR_ALLOC = -1, ERR_ARGS = -2 };

typedef struct {
    int32_t x0, y0, x1, y1, first, area2, euler4, size, record, stamp, exterior;
} Slot;

typedef struct {
    int32_t x0, y0, x1, y1, first, area2, euler4, size, key_hi, key_lo;
} Record;

typedef struct {
    Slot *slots;
    int32_t *parent; /* union-find over slots, apart from the attributes: finds touch only this array */
    Record *records;
    int32_t *dirty;
    int32_t n_slots, n_records, n_dirty, capacity;
} Sweep;

/* 8-neighbour bit order: 0 NW, 1 N, 2 NE, 3 W, 4 E, 5 SW, 6 S, 7 SE. The four 2x2 windows around a pixel are
 * {NW, N, W}, {N, NE, E}, {W, SW, S}, {E, S, SE} plus the pixel itself; the first bit of each triple is the
 * pixel's diagonal partner in that window. */
static const int WINDOW_BITS[4][3] = {{0, 1, 3}, {2, 1, 4}, {5, 3, 6}, {7, 4, 6}};
static int8_t AREA2_GAIN[256];
static int8_t EULER4_GAIN[256];

static int window_area2(int count) { return count == 4 ? 2 : (count == 3 ? 1 : 0); }

static int window_euler4(int count, int diagonal_pair) {
    if (count == 1) return 1;
    if (count == 3) return -1;
    if (count == 2 && diagonal_pair) return -2;
    return 0;
}

/* Fills the gain tables; the loader calls it once, before any sweep. */
void camfix_init(void) {
    for (int mask = 0; mask < 256; ++mask) {
        int area2 = 0, euler4 = 0;
        for (int w = 0; w < 4; ++w) {
            int diag = (mask >> WINDOW_BITS[w][0]) & 1;
            int side_a = (mask >> WINDOW_BITS[w][1]) & 1;
            int side_b = (mask >> WINDOW_BITS[w][2]) & 1;
            int before = diag + side_a + side_b;
            /* Before: the two side pixels are diagonal to each other; after adding the pixel, a pair is
             * diagonal only when its other member is the diagonal partner. */
            int before_diag = (before == 2 && side_a && side_b);
            int after_diag = (before == 1 && diag);
            area2 += window_area2(before + 1) - window_area2(before);
            euler4 += window_euler4(before + 1, after_diag) - window_euler4(before, before_diag);
        }
        AREA2_GAIN[mask] = (int8_t)area2;
        EULER4_GAIN[mask] = (int8_t)euler4;
    }
}

static inline int32_t find_root(int32_t *parent, int32_t s) {
    while (parent[s] != s) {
        const int32_t grand = parent[parent[s]];
        parent[s] = grand;
        s = grand;
    }
    return s;
}

/* Room for `count` more pixels: each may open a slot, and every live slot may be dirty and write a record. */
static int reserve(Sweep *sw, int32_t count) {
    const int64_t need = (int64_t)sw->n_records + sw->n_slots + count;
    if (need <= sw->capacity) return OK;
    int64_t capacity = sw->capacity;
    while (capacity < need) capacity *= 2;
    Slot *slots = (Slot *)realloc(sw->slots, sizeof(Slot) * (size_t)capacity);
    if (slots) sw->slots = slots;
    int32_t *parent = (int32_t *)realloc(sw->parent, sizeof(int32_t) * (size_t)capacity);
    if (parent) sw->parent = parent;
    Record *records = (Record *)realloc(sw->records, sizeof(Record) * (size_t)capacity);
    if (records) sw->records = records;
    int32_t *dirty = (int32_t *)realloc(sw->dirty, sizeof(int32_t) * (size_t)capacity);
    if (dirty) sw->dirty = dirty;
    if (!slots || !parent || !records || !dirty) return ERR_ALLOC;
    sw->capacity = (int32_t)capacity;
    return OK;
}

/* A component changes at key m: its current record stops being valid below key m + 1. */
static inline void touch(Sweep *sw, int32_t s, int32_t key) {
    Slot *slot = &sw->slots[s];
    if (slot->stamp == key) return;
    slot->stamp = key;
    sw->dirty[sw->n_dirty++] = s;
    if (slot->record >= 0) {
        sw->records[slot->record].key_lo = key + 1;
        slot->record = -1;
    }
}

static inline int32_t unite(Sweep *sw, int32_t a, int32_t b) {
    Slot *slots = sw->slots;
    if (slots[a].size < slots[b].size) { int32_t t = a; a = b; b = t; }
    Slot *w = &slots[a], *l = &slots[b];
    sw->parent[b] = a;
    if (l->x0 < w->x0) w->x0 = l->x0;
    if (l->y0 < w->y0) w->y0 = l->y0;
    if (l->x1 > w->x1) w->x1 = l->x1;
    if (l->y1 > w->y1) w->y1 = l->y1;
    if (l->first < w->first) w->first = l->first;
    w->area2 += l->area2;
    w->euler4 += l->euler4;
    w->size += l->size;
    w->exterior |= l->exterior;
    return a;
}

/*
 * One sweep over a padded key image (pw x ph, a frame of key 0 around the image). Pixels with key 0 are never
 * added. Keys are processed from max_key down to 1; the state after key m is one threshold level. With
 * `exterior`, the frame starts as one processed component flagged exterior, and exterior components get no
 * records. `eight` selects 8-connectivity (else 4).
 */
static int sweep(const uint16_t *keys, int32_t pw, int32_t ph, int32_t max_key, int eight, int exterior,
                 Sweep *sw) {
    const int32_t n = pw * ph;
    int32_t *lab = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    int32_t *order = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    int32_t *start = (int32_t *)calloc((size_t)max_key + 2, sizeof(int32_t));
    sw->capacity = 1024;
    sw->slots = (Slot *)malloc(sizeof(Slot) * (size_t)sw->capacity);
    sw->parent = (int32_t *)malloc(sizeof(int32_t) * (size_t)sw->capacity);
    sw->records = (Record *)malloc(sizeof(Record) * (size_t)sw->capacity);
    sw->dirty = (int32_t *)malloc(sizeof(int32_t) * (size_t)sw->capacity);
    sw->n_slots = sw->n_records = sw->n_dirty = 0;
    int status = OK;
    if (!lab || !order || !start || !sw->slots || !sw->parent || !sw->records || !sw->dirty) {
        status = ERR_ALLOC;
        goto done;
    }
    /* Counting sort by key, descending; stable, so pixels of one key stay in raster order. */
    for (int32_t p = 0; p < n; ++p) start[keys[p]]++;
    int32_t position = 0;
    for (int32_t m = max_key; m >= 1; --m) { int32_t c = start[m]; start[m] = position; position += c; }
    for (int32_t p = 0; p < n; ++p) if (keys[p] > 0) order[start[keys[p]]++] = p;
    /* start[m] now is the end of key m. */
    for (int32_t p = 0; p < n; ++p) lab[p] = -1;
    if (exterior) {
        sw->parent[0] = 0;
        sw->slots[sw->n_slots++] = (Slot){0, 0, pw - 1, ph - 1, 0, 0, 0, n, -1, -1, 1};
        for (int32_t x = 0; x < pw; ++x) { lab[x] = 0; lab[(ph - 1) * pw + x] = 0; }
        for (int32_t y = 0; y < ph; ++y) { lab[y * pw] = 0; lab[y * pw + pw - 1] = 0; }
    }
    const int32_t offsets[8] = {-pw - 1, -pw, -pw + 1, -1, 1, pw - 1, pw, pw + 1};
    const int32_t offsets4[4] = {-pw, -1, 1, pw};
    const int nn = eight ? 8 : 4;
    const int32_t *off = eight ? offsets : offsets4;
    const double inv_pw = 1.0 / pw;
    int32_t cursor = 0;
    for (int32_t m = max_key; m >= 1; --m) {
        const int32_t end = start[m];
        if (reserve(sw, end - cursor) != OK) { status = ERR_ALLOC; goto done; }
        for (; cursor < end; ++cursor) {
            const int32_t p = order[cursor];
            /* Gather the neighbours' labels first and branch only on the processed ones: whether a neighbour
             * is processed is close to random, and a branch per neighbour mispredicts half the time. */
            int32_t labels[8];
            unsigned mask = 0;
            for (int d = 0; d < nn; ++d) {
                labels[d] = lab[p + off[d]];
                mask |= (unsigned)(labels[d] >= 0) << d;
            }
            int32_t cur = -1, last = -1;
            for (unsigned bits = mask; bits; bits &= bits - 1) {
                const int d = __builtin_ctz(bits);
                const int32_t l = labels[d];
                if (l == last) continue;
                last = l;
                const int32_t r = find_root(sw->parent, l);
                /* Relabel the neighbour with its root: the next pixel reading it skips the find. */
                if (r != l) lab[p + off[d]] = r;
                if (r == cur) continue;
                touch(sw, r, m);
                cur = (cur < 0) ? r : unite(sw, cur, r);
            }
            /* p + 0.5 keeps exact multiples of pw away from the rounding edge. */
            const int32_t y = (int32_t)((p + 0.5) * inv_pw), x = p - y * pw;
            if (cur < 0) {
                cur = sw->n_slots++;
                sw->parent[cur] = cur;
                sw->slots[cur] = (Slot){x, y, x, y, p, 0, 0, 0, -1, -1, 0};
                touch(sw, cur, m);
            }
            lab[p] = cur;
            Slot *s = &sw->slots[cur];
            if (x < s->x0) s->x0 = x;
            if (x > s->x1) s->x1 = x;
            if (y < s->y0) s->y0 = y;
            if (y > s->y1) s->y1 = y;
            if (p < s->first) s->first = p;
            s->size += 1;
            if (eight) {
                s->area2 += AREA2_GAIN[mask];
                s->euler4 += EULER4_GAIN[mask];
            }
        }
        for (int32_t i = 0; i < sw->n_dirty; ++i) {
            const int32_t d = sw->dirty[i];
            Slot *s = &sw->slots[d];
            if (sw->parent[d] != d || s->exterior) continue;
            s->record = sw->n_records;
            sw->records[sw->n_records++] =
                (Record){s->x0, s->y0, s->x1, s->y1, s->first, s->area2, s->euler4, s->size, m, 1};
        }
        sw->n_dirty = 0;
    }
done:
    free(lab); free(order); free(start);
    return status;
}

static void sweep_free(Sweep *sw) {
    free(sw->slots); free(sw->parent); free(sw->records); free(sw->dirty);
    sw->slots = NULL; sw->parent = NULL; sw->records = NULL; sw->dirty = NULL;
}

/* IoU with the inclusive (+1) pixel convention, best over the ground-truth boxes. */
static double best_iou(int64_t x0, int64_t y0, int64_t x1, int64_t y1, const int64_t *gt, int32_t n_gt) {
    double best = 0.0;
    int first = 1;
    const int64_t area = (x1 - x0 + 1) * (y1 - y0 + 1);
    for (int32_t g = 0; g < n_gt; ++g) {
        const int64_t *b = gt + 4 * g;
        int64_t iw = (x1 < b[2] ? x1 : b[2]) - (x0 > b[0] ? x0 : b[0]) + 1;
        int64_t ih = (y1 < b[3] ? y1 : b[3]) - (y0 > b[1] ? y0 : b[1]) + 1;
        int64_t inter = (iw > 0 ? iw : 0) * (ih > 0 ? ih : 0);
        int64_t denominator = area + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter;
        double iou = denominator > 0 ? (double)inter / (double)denominator : 0.0;
        if (first || iou > best) { best = iou; first = 0; }
    }
    return best;
}

/*
 * Per threshold index j in [0, n_levels): best IoU of the chosen box (iou_single) and of any box (iou_multi).
 *
 * levels: (height, width) int32, values in [0, n_levels]; gt: (n_gt, 4) int64 inclusive boxes, n_gt >= 1.
 * reference != 0 reproduces wsolevaluation's OpenCV semantics: the chosen box is the outer contour with the
 * largest cv2.contourArea (ties: the contour OpenCV lists first, the one starting last in raster order), boxes
 * are (x, y, min(x + w, width - 1), min(y + h, height - 1)) of cv2.boundingRect, holes give boxes too, and a
 * threshold with no contour gives the box (0, 0, 0, 0). Where a component with holes makes the largest contour
 * uncertain, ambiguous[j] is set and iou_single[j] must be computed by the caller with OpenCV.
 * reference == 0: the chosen box is the inclusive box of the component with the most pixels (ties: the one
 * starting first in raster order), multi boxes are the components only, no foreground gives IoU 0.
 */
int camfix_threshold_box_ious(const int32_t *levels, int32_t height, int32_t width, int32_t n_levels,
                              const int64_t *gt, int32_t n_gt, int32_t reference, int32_t want_single,
                              int32_t want_multi, double *iou_single, double *iou_multi, uint8_t *ambiguous) {
    if (height <= 0 || width <= 0 || n_levels <= 0 || n_levels > 65535 || n_gt <= 0) return ERR_ARGS;
    if ((int64_t)(height + 2) * (width + 2) > INT32_MAX / 2) return ERR_ARGS;
    const int32_t pw = width + 2, ph = height + 2, n = pw * ph;
    uint16_t *keys = (uint16_t *)calloc((size_t)n, sizeof(uint16_t));
    if (!keys) return ERR_ALLOC;
    for (int32_t y = 0; y < height; ++y)
        for (int32_t x = 0; x < width; ++x) keys[(y + 1) * pw + x + 1] = (uint16_t)levels[y * width + x];

    Sweep fg = {0}, bg = {0};
    int status = sweep(keys, pw, ph, n_levels, 1, 0, &fg);
    /* Holes matter only up to the highest threshold where some component has one (Euler number < 1). */
    int32_t top_holed = -1;
    for (int32_t r = 0; r < fg.n_records; ++r)
        if (fg.records[r].euler4 < 4 && fg.records[r].key_hi - 1 > top_holed) top_holed = fg.records[r].key_hi - 1;
    if (status == OK && reference && want_multi && top_holed >= 0) {
        /* Background at threshold j is level <= j: key n_levels - level turns the ascending order into the
         * sweep's descending one. Pixels above top_holed (and at level n_levels, never background) get key 0. */
        for (int32_t y = 1; y < ph - 1; ++y)
            for (int32_t x = 1; x < pw - 1; ++x) {
                const int32_t level = keys[y * pw + x];
                keys[y * pw + x] = (uint16_t)(level <= top_holed ? n_levels - level : 0);
            }
        status = sweep(keys, pw, ph, n_levels, 0, 1, &bg);
    }
    free(keys);
    if (status != OK) { sweep_free(&fg); sweep_free(&bg); return status; }

    const double empty_iou = reference ? best_iou(0, 0, 0, 0, gt, n_gt) : 0.0;
    int32_t *best_record = NULL;
    if (want_multi) for (int32_t j = 0; j < n_levels; ++j) iou_multi[j] = -1.0;
    if (want_single) {
        best_record = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_levels);
        if (!best_record) { sweep_free(&fg); sweep_free(&bg); return ERR_ALLOC; }
        for (int32_t j = 0; j < n_levels; ++j) { best_record[j] = -1; ambiguous[j] = 0; }
    }
    /* Foreground records: key m is threshold m - 1. Boxes in image coordinates (the frame shifts by 1). */
    for (int32_t r = 0; r < fg.n_records; ++r) {
        const Record *rec = &fg.records[r];
        const int64_t x0 = rec->x0 - 1, y0 = rec->y0 - 1;
        int64_t x1 = rec->x1 - 1, y1 = rec->y1 - 1;
        if (reference) {
            x1 = (x1 + 1 < width - 1) ? x1 + 1 : width - 1;
            y1 = (y1 + 1 < height - 1) ? y1 + 1 : height - 1;
        }
        const double iou = best_iou(x0, y0, x1, y1, gt, n_gt);
        for (int32_t j = rec->key_lo - 1; j <= rec->key_hi - 1; ++j) {
            if (want_multi && iou > iou_multi[j]) iou_multi[j] = iou;
            if (!want_single) continue;
            const int32_t b = best_record[j];
            if (b < 0) { best_record[j] = r; continue; }
            const Record *cur = &fg.records[b];
            if (reference) {
                /* Lower bound of the doubled contour area: exact without holes. */
                const int32_t holes_rec = 1 - rec->euler4 / 4, holes_cur = 1 - cur->euler4 / 4;
                const int32_t lb_rec = rec->area2 + 4 * holes_rec, lb_cur = cur->area2 + 4 * holes_cur;
                if (lb_rec > lb_cur || (lb_rec == lb_cur && rec->first > cur->first)) best_record[j] = r;
            } else if (rec->size > cur->size || (rec->size == cur->size && rec->first < cur->first)) {
                best_record[j] = r;
            }
        }
    }
    if (want_single && reference) {
        /* The largest lower bound wins unless another component's upper bound could reach it. */
        for (int32_t r = 0; r < fg.n_records; ++r) {
            const Record *rec = &fg.records[r];
            const int32_t holes_rec = 1 - rec->euler4 / 4;
            const int32_t ub_rec = holes_rec > 0 ? 2 * (rec->x1 - rec->x0) * (rec->y1 - rec->y0) : rec->area2;
            for (int32_t j = rec->key_lo - 1; j <= rec->key_hi - 1; ++j) {
                const int32_t b = best_record[j];
                if (b == r) continue;
                const Record *cur = &fg.records[b];
                const int32_t lb_cur = cur->area2 + 4 * (1 - cur->euler4 / 4);
                if (ub_rec > lb_cur || (ub_rec == lb_cur && rec->first > cur->first)) ambiguous[j] = 1;
            }
        }
    }
    if (want_single) {
        for (int32_t j = 0; j < n_levels; ++j) {
            const int32_t b = best_record[j];
            if (b < 0) { iou_single[j] = empty_iou; continue; }
            const Record *rec = &fg.records[b];
            int64_t x1 = rec->x1 - 1, y1 = rec->y1 - 1;
            if (reference) {
                x1 = (x1 + 1 < width - 1) ? x1 + 1 : width - 1;
                y1 = (y1 + 1 < height - 1) ? y1 + 1 : height - 1;
            }
            iou_single[j] = best_iou(rec->x0 - 1, rec->y0 - 1, x1, y1, gt, n_gt);
        }
        free(best_record);
    }
    if (want_multi) {
        /* Holes: key m is threshold n_levels - m; the hole contour runs through the pixels around the hole. */
        for (int32_t r = 0; r < bg.n_records; ++r) {
            const Record *rec = &bg.records[r];
            const int64_t x0 = rec->x0 - 2, y0 = rec->y0 - 2;
            const int64_t x1 = (rec->x1 + 1 < width - 1) ? rec->x1 + 1 : width - 1;
            const int64_t y1 = (rec->y1 + 1 < height - 1) ? rec->y1 + 1 : height - 1;
            const double iou = best_iou(x0, y0, x1, y1, gt, n_gt);
            const int32_t last = n_levels - rec->key_lo < top_holed ? n_levels - rec->key_lo : top_holed;
            for (int32_t j = n_levels - rec->key_hi; j <= last; ++j)
                if (iou > iou_multi[j]) iou_multi[j] = iou;
        }
        for (int32_t j = 0; j < n_levels; ++j) if (iou_multi[j] < 0) iou_multi[j] = empty_iou;
    }
    sweep_free(&fg);
    sweep_free(&bg);
    return OK;
}
