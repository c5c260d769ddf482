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
 *     contours (findContours pads the image with zeros, so the frame is background). It runs only where a
 *     hole could beat the best component box (see level_box_ious).
 * One counting sort of the pixels by level serves both: the background sweep walks its blocks in reverse.
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

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_kernels.h"


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

/* Buffers of one batch call, allocated once and reused for every image (one per calling thread). */
typedef struct {
    int32_t pw, ph;           /* padded image size */
    uint16_t *keys;           /* (ph, pw) padded key image */
    uint8_t *quantised;       /* (height, width) reference mode's uint8 map */
    int32_t *lab;             /* (ph, pw) component label per processed pixel */
    int32_t *order, *rows;    /* (ph, pw) pixels in processing order, and their rows */
    uint8_t *masks;           /* (ph, pw) processed neighbours when a pixel is added */
    int32_t *level_end;       /* (max_levels + 2) where each level's block of `order` ends */
    int32_t *block_lo, *block_hi; /* (max_levels + 2) a sweep's block of `order` per key */
    int32_t *histograms;      /* (4 * (max_levels + 2)) */
    int32_t *level_of_threshold, *best_record;
    int64_t *integer_thresholds;
    double *level_single, *level_multi;
    uint8_t *level_ambiguous;
    Sweep fg, bg;
} Workspace;

/* 8-neighbour bit order: 0 NW, 1 N, 2 NE, 3 W, 4 E, 5 SW, 6 S, 7 SE. The four 2x2 windows around a pixel are
 * {NW, N, W}, {N, NE, E}, {W, SW, S}, {E, S, SE} plus the pixel itself; the first bit of each triple is the
 * pixel's diagonal partner in that window. */
static const int WINDOW_BITS[4][3] = {{0, 1, 3}, {2, 1, 4}, {5, 3, 6}, {7, 4, 6}};
static const int RING_DX[8] = {-1, 0, 1, -1, 1, -1, 0, 1};
static const int RING_DY[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
static int8_t AREA2_GAIN[256];
static int8_t EULER4_GAIN[256];

/* Processed neighbours that touch each other are already one component (the later one joined the earlier), so
 * a pixel needs one find per group of mutually connected processed neighbours, not one per neighbour: on a
 * smooth map the processed neighbours form one arc and a pixel costs a single find. GROUPS[c][mask] lists one
 * neighbour bit per group that is adjacent to the pixel, for 4- (c = 0) and 8-connectivity (c = 1). */
typedef struct {
    uint8_t count, bit[4];
} Groups;
static Groups GROUPS[2][256];

static int window_area2(int count) { return count == 4 ? 2 : (count == 3 ? 1 : 0); }

static int window_euler4(int count, int diagonal_pair) {
    if (count == 1) return 1;
    if (count == 3) return -1;
    if (count == 2 && diagonal_pair) return -2;
    return 0;
}

static int ring_adjacent(int a, int b, int eight) {
    const int dx = abs(RING_DX[a] - RING_DX[b]), dy = abs(RING_DY[a] - RING_DY[b]);
    return eight ? (dx <= 1 && dy <= 1) : (dx + dy == 1);
}

static void fill_groups(int eight, unsigned mask, Groups *groups) {
    int group_of[8];
    for (int d = 0; d < 8; ++d) group_of[d] = d;
    /* Eight bits: relax until stable (at most 8 rounds) rather than a union-find. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int a = 0; a < 8; ++a)
            for (int b = 0; b < 8; ++b)
                if (((mask >> a) & (mask >> b) & 1) && ring_adjacent(a, b, eight) && group_of[b] < group_of[a]) {
                    group_of[a] = group_of[b];
                    changed = 1;
                }
    }
    groups->count = 0;
    unsigned seen = 0;
    for (int d = 0; d < 8; ++d) {
        const int touches_pixel = eight || (RING_DX[d] == 0 || RING_DY[d] == 0);
        if (!((mask >> d) & 1) || !touches_pixel || ((seen >> group_of[d]) & 1)) continue;
        seen |= 1u << group_of[d];
        groups->bit[groups->count++] = (uint8_t)d;
    }
}

/* Fills the gain and group tables; the module calls it once, at import, before any sweep. */
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
        fill_groups(0, (unsigned)mask, &GROUPS[0][mask]);
        fill_groups(1, (unsigned)mask, &GROUPS[1][mask]);
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
    if (need <= sw->capacity) return CAMFIX_OK;
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
    if (!slots || !parent || !records || !dirty) return CAMFIX_ERR_ALLOC;
    sw->capacity = (int32_t)capacity;
    return CAMFIX_OK;
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

/* The root of the component of processed pixel q; q is relabelled with it, so the next reader skips the find. */
static inline int32_t root_at(int32_t *lab, int32_t *parent, int32_t q) {
    const int32_t l = lab[q], r = find_root(parent, l);
    if (r != l) lab[q] = r;
    return r;
}

/*
 * Counting sort of the interior pixels of the level image in ws->keys (levels 0 to n_levels) by level,
 * descending, into ws->order and ws->rows; stable, so the pixels of one level stay in raster order. Level l's
 * pixels end up at positions [level_end[l + 1], level_end[l]) (level_end[n_levels + 1] = 0). Both sweeps walk
 * these blocks: the foreground one from the top level down, the background one from level 0 up.
 */
static void sort_levels(Workspace *ws, int32_t n_levels) {
    const uint16_t *keys = ws->keys;
    const int32_t pw = ws->pw, ph = ws->ph;
    int32_t *order = ws->order, *rows = ws->rows, *level_end = ws->level_end;
    /* Neighbouring pixels often share a level: four histograms, filled in turn, keep the increments
     * independent. */
    int32_t *histograms = ws->histograms;
    memset(histograms, 0, sizeof(int32_t) * 4 * ((size_t)n_levels + 1));
    for (int32_t y = 1; y < ph - 1; ++y) {
        const uint16_t *row = keys + y * pw;
        int32_t x = 1;
        for (; x + 3 < pw - 1; x += 4) {
            histograms[4 * row[x]]++;
            histograms[4 * row[x + 1] + 1]++;
            histograms[4 * row[x + 2] + 2]++;
            histograms[4 * row[x + 3] + 3]++;
        }
        for (; x < pw - 1; ++x) histograms[4 * row[x]]++;
    }
    int32_t position = 0;
    level_end[n_levels + 1] = 0;
    for (int32_t l = n_levels; l >= 0; --l) {
        level_end[l] = position; /* the start of level l until the scatter has moved it to the end */
        position += histograms[4 * l] + histograms[4 * l + 1] + histograms[4 * l + 2] + histograms[4 * l + 3];
    }
    for (int32_t y = 1; y < ph - 1; ++y)
        for (int32_t p = y * pw + 1; p < y * pw + pw - 1; ++p) {
            const int32_t slot = level_end[keys[p]];
            order[slot] = p;
            rows[slot] = y;
            level_end[keys[p]] = slot + 1;
        }
}

/*
 * Which neighbours of each interior pixel are already processed when the pixel is added, as ws->masks bits, from
 * the level image in ws->keys (branch-free, one raster pass). Pixels are added level by level and in raster
 * order within a level, so a neighbour earlier in raster order (NW, N, NE, W) is processed when it comes at the
 * same level or before, a later one (E, SW, S, SE) only when it comes before. The foreground sweep adds levels
 * downwards (a neighbour comes before when its level is higher) and never adds the frame (level 0, never
 * higher). The background sweep adds levels upwards (lower comes before) and starts with the frame.
 */
static void neighbour_masks(Workspace *ws, int background) {
    const uint16_t *keys = ws->keys;
    const int32_t pw = ws->pw, ph = ws->ph;
    uint8_t *masks = ws->masks;
    for (int32_t y = 1; y < ph - 1; ++y) {
        const uint16_t *up = keys + (y - 1) * pw, *row = keys + y * pw, *down = keys + (y + 1) * pw;
        uint8_t *out = masks + y * pw;
        if (background) {
            for (int32_t x = 1; x < pw - 1; ++x) {
                const uint16_t k = row[x];
                out[x] = (uint8_t)((up[x - 1] <= k) | (up[x] <= k) << 1 | (up[x + 1] <= k) << 2 |
                                   (row[x - 1] <= k) << 3 | (row[x + 1] < k) << 4 | (down[x - 1] < k) << 5 |
                                   (down[x] < k) << 6 | (down[x + 1] < k) << 7);
            }
        } else {
            for (int32_t x = 1; x < pw - 1; ++x) {
                const uint16_t k = row[x];
                out[x] = (uint8_t)((up[x - 1] >= k) | (up[x] >= k) << 1 | (up[x + 1] >= k) << 2 |
                                   (row[x - 1] >= k) << 3 | (row[x + 1] > k) << 4 | (down[x - 1] > k) << 5 |
                                   (down[x] > k) << 6 | (down[x + 1] > k) << 7);
            }
        }
    }
    if (!background) return;
    /* The frame's level 0 is not below a level-0 pixel: mark the later frame neighbours (SW, S, SE on the
     * last row, SW on the first column, E and SE on the last) processed. The earlier ones already are. */
    for (int32_t x = 1; x < pw - 1; ++x) masks[(ph - 2) * pw + x] |= 1u << 5 | 1u << 6 | 1u << 7;
    for (int32_t y = 1; y < ph - 1; ++y) {
        masks[y * pw + 1] |= 1u << 5;
        masks[y * pw + pw - 2] |= 1u << 4 | 1u << 7;
    }
}

/*
 * One sweep over the padded image (pw x ph, a frame around the image) given by ws->masks: the pixels of key m
 * are order[block_lo[m] .. block_hi[m]), in raster order, and are processed from key max_key down to 1; the
 * state after key m is one threshold level. With `exterior`, the frame is one processed component flagged
 * exterior, and exterior components get no records. `eight` selects 8-connectivity (else 4).
 */
static int sweep(Workspace *ws, int32_t max_key, int eight, int exterior, Sweep *sw) {
    const int32_t pw = ws->pw, ph = ws->ph, n = pw * ph;
    const int32_t *order = ws->order, *rows = ws->rows, *block_lo = ws->block_lo, *block_hi = ws->block_hi;
    int32_t *lab = ws->lab;
    uint8_t *masks = ws->masks;
    sw->n_slots = sw->n_records = sw->n_dirty = 0;
    /* lab is read only at processed neighbours, which the sweep has labelled: only the frame needs a label. */
    if (exterior) {
        sw->parent[0] = 0;
        sw->slots[sw->n_slots++] = (Slot){0, 0, pw - 1, ph - 1, 0, 0, 0, n, -1, -1, 1};
        for (int32_t x = 0; x < pw; ++x) { lab[x] = 0; lab[(ph - 1) * pw + x] = 0; }
        for (int32_t y = 0; y < ph; ++y) { lab[y * pw] = 0; lab[y * pw + pw - 1] = 0; }
    }
    const int32_t offsets[8] = {-pw - 1, -pw, -pw + 1, -1, 1, pw - 1, pw, pw + 1};
    const Groups *table = GROUPS[eight ? 1 : 0];
    int32_t *parent = sw->parent;
    for (int32_t m = max_key; m >= 1; --m) {
        const int32_t end = block_hi[m];
        if (reserve(sw, end - block_lo[m]) != CAMFIX_OK) return CAMFIX_ERR_ALLOC;
        parent = sw->parent;
        for (int32_t cursor = block_lo[m]; cursor < end; ++cursor) {
            const int32_t p = order[cursor], y = rows[cursor], x = p - y * pw;
            const unsigned mask = masks[p];
            const Groups *groups = &table[mask];
            int32_t cur;
            if (groups->count == 0) {
                cur = sw->n_slots++;
                parent[cur] = cur;
                sw->slots[cur] = (Slot){x, y, x, y, p, 0, 0, 0, -1, -1, 0};
                touch(sw, cur, m);
            } else {
                cur = root_at(lab, parent, p + offsets[groups->bit[0]]);
                touch(sw, cur, m);
                for (int g = 1; g < groups->count; ++g) {
                    const int32_t r = root_at(lab, parent, p + offsets[groups->bit[g]]);
                    if (r == cur) continue;
                    touch(sw, r, m);
                    cur = unite(sw, cur, r);
                }
            }
            lab[p] = cur;
            Slot *s = &sw->slots[cur];
            s->x0 = x < s->x0 ? x : s->x0;
            s->x1 = x > s->x1 ? x : s->x1;
            s->y0 = y < s->y0 ? y : s->y0;
            s->y1 = y > s->y1 ? y : s->y1;
            s->first = p < s->first ? p : s->first;
            s->size += 1;
            /* Counted in the background sweep too, where no record field but the box is read: no branch. */
            s->area2 += AREA2_GAIN[mask];
            s->euler4 += EULER4_GAIN[mask];
        }
        for (int32_t i = 0; i < sw->n_dirty; ++i) {
            const int32_t d = sw->dirty[i];
            Slot *s = &sw->slots[d];
            if (parent[d] != d || s->exterior) continue;
            s->record = sw->n_records;
            sw->records[sw->n_records++] =
                (Record){s->x0, s->y0, s->x1, s->y1, s->first, s->area2, s->euler4, s->size, m, 1};
        }
        sw->n_dirty = 0;
    }
    return CAMFIX_OK;
}

static void sweep_free(Sweep *sw) {
    free(sw->slots); free(sw->parent); free(sw->records); free(sw->dirty);
    sw->slots = NULL; sw->parent = NULL; sw->records = NULL; sw->dirty = NULL;
}

/* The reference's box end: cv2.boundingRect's x + w (one past the last pixel), clipped to the image. */
static inline int64_t reference_end(int64_t last, int32_t size) { return last + 1 < size - 1 ? last + 1 : size - 1; }

/* The largest share of a ground-truth box that the box covers, |box & g| / |g|, with inclusive pixels: an upper
 * bound of the IoU of any box inside this one. */
static double best_cover(int64_t x0, int64_t y0, int64_t x1, int64_t y1, const int64_t *gt, int32_t n_gt) {
    double best = 0.0;
    for (int32_t g = 0; g < n_gt; ++g) {
        const int64_t *b = gt + 4 * g;
        const int64_t iw = (x1 < b[2] ? x1 : b[2]) - (x0 > b[0] ? x0 : b[0]) + 1;
        const int64_t ih = (y1 < b[3] ? y1 : b[3]) - (y0 > b[1] ? y0 : b[1]) + 1;
        const double cover = (double)((iw > 0 ? iw : 0) * (ih > 0 ? ih : 0)) /
                             (double)((b[2] - b[0] + 1) * (b[3] - b[1] + 1));
        if (cover > best) best = cover;
    }
    return best;
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
 * Per threshold level j in [0, n_levels): best IoU of the chosen box (iou_single) and of any box (iou_multi), for
 * the image in ws->keys (padded, frame 0, key = level: foreground at level j is key > j).
 *
 * gt: (n_gt, 4) int64 inclusive boxes, n_gt >= 1. reference != 0 reproduces wsolevaluation's OpenCV semantics:
 * the chosen box is the outer contour with the largest cv2.contourArea (ties: the contour OpenCV lists first,
 * the one starting last in raster order), boxes are (x, y, min(x + w, width - 1), min(y + h, height - 1)) of
 * cv2.boundingRect, holes give boxes too, and a threshold with no contour gives the box (0, 0, 0, 0). Where a
 * component with holes makes the largest contour uncertain, ambiguous[j] is set and iou_single[j] must be
 * computed by the caller with OpenCV. reference == 0: the chosen box is the inclusive box of the component with
 * the most pixels (ties: the one starting first in raster order), multi boxes are the components only, no
 * foreground gives IoU 0.
 */
static int level_box_ious(Workspace *ws, int32_t height, int32_t width, int32_t n_levels, const int64_t *gt,
                          int32_t n_gt, int32_t reference, int32_t want_single, int32_t want_multi,
                          double *iou_single, double *iou_multi, uint8_t *ambiguous) {
    Sweep *fg = &ws->fg, *bg = &ws->bg;
    bg->n_records = 0;
    sort_levels(ws, n_levels);
    neighbour_masks(ws, 0);
    /* Foreground at threshold j is level > j: key = level, and key m is level m's block. */
    for (int32_t m = 1; m <= n_levels; ++m) {
        ws->block_lo[m] = ws->level_end[m + 1];
        ws->block_hi[m] = ws->level_end[m];
    }
    int status = sweep(ws, n_levels, 1, 0, fg);
    if (status != CAMFIX_OK) return status;

    const double empty_iou = reference ? best_iou(0, 0, 0, 0, gt, n_gt) : 0.0;
    int32_t *best_record = ws->best_record;
    if (want_multi) for (int32_t j = 0; j < n_levels; ++j) iou_multi[j] = -1.0;
    if (want_single) {
        for (int32_t j = 0; j < n_levels; ++j) { best_record[j] = -1; ambiguous[j] = 0; }
    }
    /* Foreground records: key m is threshold m - 1. Boxes in image coordinates (the frame shifts by 1). */
    for (int32_t r = 0; r < fg->n_records; ++r) {
        const Record *rec = &fg->records[r];
        const int64_t x0 = rec->x0 - 1, y0 = rec->y0 - 1;
        const int64_t x1 = reference ? reference_end(rec->x1 - 1, width) : rec->x1 - 1;
        const int64_t y1 = reference ? reference_end(rec->y1 - 1, height) : rec->y1 - 1;
        const double iou = best_iou(x0, y0, x1, y1, gt, n_gt);
        for (int32_t j = rec->key_lo - 1; j <= rec->key_hi - 1; ++j) {
            if (want_multi && iou > iou_multi[j]) iou_multi[j] = iou;
            if (!want_single) continue;
            const int32_t b = best_record[j];
            if (b < 0) { best_record[j] = r; continue; }
            const Record *cur = &fg->records[b];
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
        for (int32_t r = 0; r < fg->n_records; ++r) {
            const Record *rec = &fg->records[r];
            const int32_t holes_rec = 1 - rec->euler4 / 4;
            const int32_t ub_rec = holes_rec > 0 ? 2 * (rec->x1 - rec->x0) * (rec->y1 - rec->y0) : rec->area2;
            for (int32_t j = rec->key_lo - 1; j <= rec->key_hi - 1; ++j) {
                const int32_t b = best_record[j];
                if (b == r) continue;
                const Record *cur = &fg->records[b];
                const int32_t lb_cur = cur->area2 + 4 * (1 - cur->euler4 / 4);
                if (ub_rec > lb_cur || (ub_rec == lb_cur && rec->first > cur->first)) ambiguous[j] = 1;
            }
        }
    }
    if (want_single) {
        for (int32_t j = 0; j < n_levels; ++j) {
            const int32_t b = best_record[j];
            if (b < 0) { iou_single[j] = empty_iou; continue; }
            const Record *rec = &fg->records[b];
            const int64_t x1 = reference ? reference_end(rec->x1 - 1, width) : rec->x1 - 1;
            const int64_t y1 = reference ? reference_end(rec->y1 - 1, height) : rec->y1 - 1;
            iou_single[j] = best_iou(rec->x0 - 1, rec->y0 - 1, x1, y1, gt, n_gt);
        }
    }
    /* Holes (reference mode's hole contours) can raise the best IoU at threshold j only where a component with
     * holes (Euler number < 1) could hold a hole box better than the best component box: a hole box lies in its
     * component's box B, so its IoU with g is at most |B & g| / |g|. The background sweep runs only up to the
     * highest such threshold, and not at all when there is none (the common case). */
    int32_t top_holed = -1;
    for (int32_t r = 0; want_multi && reference && r < fg->n_records; ++r) {
        const Record *rec = &fg->records[r];
        if (rec->euler4 >= 4 || rec->key_hi - 1 <= top_holed) continue;
        const double bound = best_cover(rec->x0 - 1, rec->y0 - 1, reference_end(rec->x1 - 1, width),
                                        reference_end(rec->y1 - 1, height), gt, n_gt);
        for (int32_t j = rec->key_hi - 1; j >= rec->key_lo - 1 && j > top_holed; --j)
            if (bound > iou_multi[j]) { top_holed = j; break; }
    }
    if (top_holed >= 0) {
        /* Background at threshold j is level <= j: key n_levels - level turns the ascending order into the
         * sweep's descending one, over the same blocks; levels above top_holed get none. */
        for (int32_t m = 1; m <= n_levels; ++m) {
            const int32_t level = n_levels - m;
            ws->block_lo[m] = level <= top_holed ? ws->level_end[level + 1] : 0;
            ws->block_hi[m] = level <= top_holed ? ws->level_end[level] : 0;
        }
        neighbour_masks(ws, 1);
        status = sweep(ws, n_levels, 0, 1, bg);
        if (status != CAMFIX_OK) return status;
    }
    if (want_multi) {
        /* Holes: key m is threshold n_levels - m; the hole contour runs through the pixels around the hole. */
        for (int32_t r = 0; r < bg->n_records; ++r) {
            const Record *rec = &bg->records[r];
            const int64_t x0 = rec->x0 - 2, y0 = rec->y0 - 2;
            const double iou =
                best_iou(x0, y0, reference_end(rec->x1, width), reference_end(rec->y1, height), gt, n_gt);
            const int32_t last = n_levels - rec->key_lo < top_holed ? n_levels - rec->key_lo : top_holed;
            for (int32_t j = n_levels - rec->key_hi; j <= last; ++j)
                if (iou > iou_multi[j]) iou_multi[j] = iou;
        }
        for (int32_t j = 0; j < n_levels; ++j) if (iou_multi[j] < 0) iou_multi[j] = empty_iou;
    }
    return CAMFIX_OK;
}

static void workspace_free(Workspace *ws) {
    free(ws->keys); free(ws->quantised); free(ws->lab); free(ws->order); free(ws->rows); free(ws->masks);
    free(ws->level_end); free(ws->block_lo); free(ws->block_hi); free(ws->histograms);
    free(ws->level_of_threshold); free(ws->best_record); free(ws->integer_thresholds);
    free(ws->level_single); free(ws->level_multi); free(ws->level_ambiguous);
    sweep_free(&ws->fg);
    sweep_free(&ws->bg);
}

static int sweep_alloc(Sweep *sw) {
    sw->capacity = 1024;
    sw->slots = (Slot *)malloc(sizeof(Slot) * (size_t)sw->capacity);
    sw->parent = (int32_t *)malloc(sizeof(int32_t) * (size_t)sw->capacity);
    sw->records = (Record *)malloc(sizeof(Record) * (size_t)sw->capacity);
    sw->dirty = (int32_t *)malloc(sizeof(int32_t) * (size_t)sw->capacity);
    return sw->slots && sw->parent && sw->records && sw->dirty ? CAMFIX_OK : CAMFIX_ERR_ALLOC;
}

static int workspace_alloc(Workspace *ws, int32_t height, int32_t width, int32_t max_levels) {
    memset(ws, 0, sizeof(*ws));
    ws->pw = width + 2;
    ws->ph = height + 2;
    const size_t n = (size_t)ws->pw * (size_t)ws->ph, levels = (size_t)max_levels + 2;
    ws->keys = (uint16_t *)malloc(sizeof(uint16_t) * n);
    ws->quantised = (uint8_t *)malloc((size_t)height * (size_t)width);
    ws->lab = (int32_t *)malloc(sizeof(int32_t) * n);
    ws->order = (int32_t *)malloc(sizeof(int32_t) * n);
    ws->rows = (int32_t *)malloc(sizeof(int32_t) * n);
    ws->histograms = (int32_t *)malloc(sizeof(int32_t) * 4 * levels);
    ws->masks = (uint8_t *)malloc(n);
    ws->level_end = (int32_t *)malloc(sizeof(int32_t) * levels);
    ws->block_lo = (int32_t *)malloc(sizeof(int32_t) * levels);
    ws->block_hi = (int32_t *)malloc(sizeof(int32_t) * levels);
    ws->level_of_threshold = (int32_t *)malloc(sizeof(int32_t) * levels);
    ws->best_record = (int32_t *)malloc(sizeof(int32_t) * levels);
    ws->integer_thresholds = (int64_t *)malloc(sizeof(int64_t) * levels);
    ws->level_single = (double *)malloc(sizeof(double) * levels);
    ws->level_multi = (double *)malloc(sizeof(double) * levels);
    ws->level_ambiguous = (uint8_t *)malloc(levels);
    const int swept = sweep_alloc(&ws->fg) == CAMFIX_OK && sweep_alloc(&ws->bg) == CAMFIX_OK;
    if (!swept || !ws->keys || !ws->quantised || !ws->lab || !ws->order || !ws->rows || !ws->masks || !ws->level_end ||
        !ws->block_lo || !ws->block_hi ||
        !ws->histograms ||
        !ws->level_of_threshold || !ws->best_record || !ws->integer_thresholds || !ws->level_single ||
        !ws->level_multi || !ws->level_ambiguous)
        return CAMFIX_ERR_ALLOC;
    return CAMFIX_OK;
}

/*
 * Level image of one map into ws->keys (padded, frame 0); returns the number of levels and fills
 * ws->level_of_threshold (threshold index -> level), or CAMFIX_ERR_VALUES when a value is not in [0, 1] (checked here,
 * in the pass that reads every value anyway, rather than by the caller in one more pass).
 *
 * Reference mode: the map is quantised as numpy's (map * 255).astype(np.uint8) in float64, and threshold tau
 * becomes the integer int(tau * max(q)) of wsolevaluation; equal integers share a level (at most 256 levels), and
 * a pixel's level is the number of distinct integers below its q. Continuous mode: one level per threshold, a
 * pixel's level the number of thresholds below its value.
 */
static int32_t map_levels(Workspace *ws, const float *map32, const double *map64, int32_t height, int32_t width,
                          const double *thresholds, int32_t n_thresholds, int32_t reference) {
    const int32_t pw = ws->pw;
    uint16_t *keys = ws->keys;
    int32_t *level_of_threshold = ws->level_of_threshold;
    const int32_t count = height * width;
    int outside = 0; /* comparisons with NaN are false */
    if (map64) {
        for (int32_t i = 0; i < count; ++i) outside |= !(map64[i] >= 0.0 && map64[i] <= 1.0);
    } else {
        for (int32_t i = 0; i < count; ++i) outside |= !(map32[i] >= 0.0f && map32[i] <= 1.0f);
    }
    if (outside) return CAMFIX_ERR_VALUES; /* before the conversions below, undefined outside [0, 1] */
    memset(keys, 0, sizeof(uint16_t) * (size_t)pw * (size_t)ws->ph);
    if (reference) {
        uint8_t *quantised = ws->quantised, top = 0;
        for (int32_t i = 0; i < count; ++i) {
            const double value = map64 ? map64[i] : (double)map32[i];
            const uint8_t q = (uint8_t)(value * 255.0);
            quantised[i] = q;
            top = q > top ? q : top;
        }
        int64_t *integers = ws->integer_thresholds;
        int32_t n_levels = 0;
        for (int32_t t = 0; t < n_thresholds; ++t) {
            const int64_t integer = (int64_t)floor(thresholds[t] * (double)top);
            if (n_levels == 0 || integers[n_levels - 1] != integer) integers[n_levels++] = integer;
            level_of_threshold[t] = n_levels - 1;
        }
        uint16_t lookup[256];
        for (int32_t v = 0, level = 0; v < 256; ++v) {
            while (level < n_levels && integers[level] < v) ++level;
            lookup[v] = (uint16_t)level;
        }
        for (int32_t y = 0; y < height; ++y)
            for (int32_t x = 0; x < width; ++x) keys[(y + 1) * pw + x + 1] = lookup[quantised[y * width + x]];
        return n_levels;
    }
    for (int32_t t = 0; t < n_thresholds; ++t) level_of_threshold[t] = t;
    for (int32_t y = 0; y < height; ++y)
        for (int32_t x = 0; x < width; ++x) {
            const double value = map64 ? map64[y * width + x] : (double)map32[y * width + x];
            int32_t low = 0, high = n_thresholds; /* first threshold >= value */
            while (low < high) {
                const int32_t middle = (low + high) / 2;
                if (thresholds[middle] < value) low = middle + 1; else high = middle;
            }
            keys[(y + 1) * pw + x + 1] = (uint16_t)low;
        }
    return n_thresholds;
}

/*
 * Box IoUs of `count` maps at every threshold: per map i and threshold t, iou_single[i * n_thresholds + t] and
 * iou_multi[...] as level_box_ious describes, and ambiguous[...] = 1 where iou_single needs OpenCV.
 *
 * Returns CAMFIX_OK, CAMFIX_ERR_VALUES (a map value outside [0, 1] or NaN), CAMFIX_ERR_ALLOC or CAMFIX_ERR_ARGS.
 *
 * maps: (count, height, width) float32 (is_float64 == 0) or float64, values in [0, 1]. thresholds: strictly
 * increasing, in [0, 1]; in continuous mode at most CAMFIX_MAX_LEVELS of them. gt: all maps' inclusive int64 boxes,
 * map i's being rows gt_start[i] to gt_start[i + 1] - 1 (at least one). Called without the GIL (_kernels.c):
 * threads may run it on disjoint slices of a batch.
 */
int camfix_box_ious(const void *maps, int32_t is_float64, int32_t count, int32_t height, int32_t width,
                    const double *thresholds, int32_t n_thresholds, int32_t reference, const int64_t *gt,
                    const int64_t *gt_start, int32_t want_single, int32_t want_multi, double *iou_single,
                    double *iou_multi, uint8_t *ambiguous) {
    if (count < 0 || height <= 0 || width <= 0 || n_thresholds <= 0) return CAMFIX_ERR_ARGS;
    if (!reference && n_thresholds > CAMFIX_MAX_LEVELS) return CAMFIX_ERR_ARGS;
    if ((int64_t)(height + 2) * (width + 2) > INT32_MAX / 2) return CAMFIX_ERR_ARGS;
    Workspace ws;
    int status = workspace_alloc(&ws, height, width, n_thresholds);
    const size_t pixels = (size_t)height * (size_t)width;
    for (int32_t i = 0; status == CAMFIX_OK && i < count; ++i) {
        const int64_t n_gt = gt_start[i + 1] - gt_start[i];
        if (n_gt <= 0) { status = CAMFIX_ERR_ARGS; break; }
        const float *map32 = is_float64 ? NULL : (const float *)maps + pixels * (size_t)i;
        const double *map64 = is_float64 ? (const double *)maps + pixels * (size_t)i : NULL;
        const int32_t n_levels = map_levels(&ws, map32, map64, height, width, thresholds, n_thresholds, reference);
        if (n_levels < 0) { status = n_levels; break; }
        status = level_box_ious(&ws, height, width, n_levels, gt + 4 * gt_start[i], (int32_t)n_gt, reference,
                                want_single, want_multi, ws.level_single, ws.level_multi, ws.level_ambiguous);
        const size_t row = (size_t)i * (size_t)n_thresholds;
        for (int32_t t = 0; status == CAMFIX_OK && t < n_thresholds; ++t) {
            const int32_t level = ws.level_of_threshold[t];
            if (want_single) {
                iou_single[row + t] = ws.level_single[level];
                ambiguous[row + t] = ws.level_ambiguous[level];
            }
            if (want_multi) iou_multi[row + t] = ws.level_multi[level];
        }
    }
    workspace_free(&ws);
    return status;
}
