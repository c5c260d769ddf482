/*
 * The counting kernels of the pixel metrics: one pass over the pixels, state of O(thresholds) or O(classes^2).
 *
 * camfix_level_histograms (PxAP, Peak IoU): a pixel's level is how many edges lie below its value, strictly
 * (edge < v: "v > tau" is the foreground at tau for edge k < level) or not (edge <= v: np.histogram's half-open
 * bins [e_k, e_k+1), bin level - 1). Per level, the kernel counts the foreground pixels and the counted
 * background pixels. Binary search over ~100 or ~1000 edges costs 7-10 unpredictable branches per pixel; here a
 * table over equal cells of [0, 1] says which edges lie in a value's cell, and comparisons with those edges
 * alone (one, with near-uniform edges) give the level. Ties at the edges are exactly those of the comparison,
 * for any edges.
 *
 * camfix_confusion (mIoU): a confusion matrix of integer label images of any width, the labels range-checked in
 * the same pass.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "_kernels.h"

/* Table cells per level: with near-uniform edges a cell then holds at most one edge, and the table of 2,000 cells
 * of the reference's finest interval (0.001) fits in the L1 cache. */
enum { CELLS_PER_LEVEL = 2, MAX_CELLS = 1 << 20 };

/* The edges whose cell is this one are edges[base .. last); `edge` is the first of them (+inf if none). */
typedef struct {
    double edge;
    int32_t base, last;
} Cell;

#define BELOW_STRICT(edge, value) ((edge) < (value))
#define BELOW_OR_EQUAL(edge, value) ((edge) <= (value))

/*
 * Counts one map's pixels into scratch[4 * level + row], row 0 (foreground), 1 (counted background) or 2
 * (ignored background). A value's cell is (int64_t)(value * cells), computed for edges and values alike, which
 * is monotone in the value: an edge in a lower cell lies below the value, one in a higher cell above it, so the
 * level is the cell's base plus the comparisons with the edges of the value's own cell. The first comparison
 * is added without a branch (it goes either way about half the time). Where a cell holds more edges than one
 * (uneven edges), a loop compares the value with the others (MORE_EDGES); the common case is compiled without
 * it (10% faster). `ignored` is the mask itself when there is no ignore region (a background pixel's mask is 0),
 * so the row needs no branch either.
 */
#define COUNT_MAP(TYPE, BELOW, MORE_EDGES)                                                                     \
    for (int64_t p = 0; p < pixels; ++p) {                                                                     \
        const double value = (double)((const TYPE *)map)[p];                                                   \
        if (!(value >= 0.0 && value <= 1.0)) return CAMFIX_ERR_VALUES;                                         \
        const Cell *cell = &table[(int64_t)(value * scale)];                                                   \
        int64_t level = cell->base + BELOW(cell->edge, value);                                                 \
        MORE_EDGES(BELOW)                                                                                      \
        const int64_t background = mask[p] == 0;                                                               \
        scratch[4 * level + background + (background & (ignored[p] != 0))]++;                                  \
    }
#define ONE_EDGE_PER_CELL(BELOW)
#define SOME_CELLS_WITH_MORE(BELOW)                                                                            \
    if (cell->last - cell->base > 1)                                                                           \
        while (level < cell->last && BELOW(edges[level], value)) ++level;

static int count_map(const void *map, int32_t is_float64, int64_t pixels, const uint8_t *mask,
                     const uint8_t *ignored, const double *edges, const Cell *table, double scale, int32_t strict,
                     int32_t one_edge, int64_t *scratch) {
    if (one_edge) {
        if (is_float64 && strict) { COUNT_MAP(double, BELOW_STRICT, ONE_EDGE_PER_CELL) }
        else if (is_float64) { COUNT_MAP(double, BELOW_OR_EQUAL, ONE_EDGE_PER_CELL) }
        else if (strict) { COUNT_MAP(float, BELOW_STRICT, ONE_EDGE_PER_CELL) }
        else { COUNT_MAP(float, BELOW_OR_EQUAL, ONE_EDGE_PER_CELL) }
    } else {
        if (is_float64 && strict) { COUNT_MAP(double, BELOW_STRICT, SOME_CELLS_WITH_MORE) }
        else if (is_float64) { COUNT_MAP(double, BELOW_OR_EQUAL, SOME_CELLS_WITH_MORE) }
        else if (strict) { COUNT_MAP(float, BELOW_STRICT, SOME_CELLS_WITH_MORE) }
        else { COUNT_MAP(float, BELOW_OR_EQUAL, SOME_CELLS_WITH_MORE) }
    }
    return CAMFIX_OK;
}

/*
 * Level histograms of `count` maps of `pixels` values each: foreground[r * (n_edges + 1) + l] += the pixels of
 * level l with a true mask, background[...] += those with a false mask that ignore (NULL: none) does not mark,
 * where r is the map's index (per_image) or 0. The outputs are only added to, and are partly updated when a value
 * is rejected: the caller passes zeroed scratch arrays.
 *
 * maps: (count, pixels) float32 (is_float64 == 0) or float64. masks, ignore: (count, pixels) bytes, non-zero is
 * true. edges: n_edges >= 1 non-decreasing values in [0, 1]. strict: level = #{edge < value}, else #{edge <= value}.
 * Returns CAMFIX_OK, CAMFIX_ERR_VALUES (a value outside [0, 1] or NaN), CAMFIX_ERR_ALLOC or CAMFIX_ERR_ARGS.
 */
int camfix_level_histograms(const void *maps, int32_t is_float64, int64_t count, int64_t pixels,
                            const uint8_t *masks, const uint8_t *ignore, const double *edges, int32_t n_edges,
                            int32_t strict, int32_t per_image, int64_t *foreground, int64_t *background) {
    if (count < 0 || pixels < 0 || n_edges < 1 || n_edges > INT32_MAX - 2) return CAMFIX_ERR_ARGS;
    const int64_t bins = (int64_t)n_edges + 1;
    const int32_t cells = bins > MAX_CELLS / CELLS_PER_LEVEL ? MAX_CELLS : (int32_t)(bins * CELLS_PER_LEVEL);
    const double scale = (double)cells; /* value * scale <= cells for a value <= 1: cells + 1 cells */
    Cell *table = (Cell *)malloc(sizeof(Cell) * ((size_t)cells + 1));
    int64_t *scratch = (int64_t *)calloc(4 * (size_t)bins, sizeof(int64_t));
    int status = table && scratch ? CAMFIX_OK : CAMFIX_ERR_ALLOC;
    int32_t one_edge = 1;
    for (int32_t c = 0, e = 0; status == CAMFIX_OK && c <= cells; ++c) {
        table[c].base = e;
        table[c].edge = e < n_edges && (int64_t)(edges[e] * scale) == c ? edges[e] : HUGE_VAL;
        while (e < n_edges && (int64_t)(edges[e] * scale) == c) ++e;
        table[c].last = e;
        one_edge &= e - table[c].base <= 1;
    }
    for (int64_t i = 0; i < count && status == CAMFIX_OK; ++i) {
        const size_t offset = (size_t)i * (size_t)pixels;
        const void *map = is_float64 ? (const void *)((const double *)maps + offset)
                                     : (const void *)((const float *)maps + offset);
        status = count_map(map, is_float64, pixels, masks + offset, (ignore ? ignore : masks) + offset, edges,
                           table, scale, strict, one_edge, scratch);
        if (status == CAMFIX_OK && (per_image || i == count - 1)) {
            int64_t *fg = foreground + (per_image ? i * bins : 0), *bg = background + (per_image ? i * bins : 0);
            for (int64_t l = 0; l < bins; ++l) {
                fg[l] += scratch[4 * l];
                bg[l] += scratch[4 * l + 1];
            }
            memset(scratch, 0, 4 * (size_t)bins * sizeof(int64_t));
        }
    }
    free(table);
    free(scratch);
    return status;
}

static inline int64_t load_label(const void *labels, camfix_label_type type, int64_t i) {
    switch (type) {
        case CAMFIX_U8: return ((const uint8_t *)labels)[i];
        case CAMFIX_I8: return ((const int8_t *)labels)[i];
        case CAMFIX_U16: return ((const uint16_t *)labels)[i];
        case CAMFIX_I16: return ((const int16_t *)labels)[i];
        case CAMFIX_U32: return ((const uint32_t *)labels)[i];
        case CAMFIX_I32: return ((const int32_t *)labels)[i];
        /* Above INT64_MAX turns negative: outside the classes either way. */
        case CAMFIX_U64: return (int64_t)((const uint64_t *)labels)[i];
        default: return ((const int64_t *)labels)[i];
    }
}

/*
 * confusion[t * classes + p] += 1 for every pixel with target t and prediction p, except where t == ignore_index
 * (when use_ignore). Returns CAMFIX_ERR_VALUES when a prediction, or a target that is not ignore_index,
 * lies outside [0, classes); the matrix is then partly updated (the caller passes a zeroed scratch one).
 */
int camfix_confusion(const void *preds, camfix_label_type pred_type, const void *targets,
                     camfix_label_type target_type, int64_t pixels, int64_t classes, int32_t use_ignore,
                     int64_t ignore_index, int64_t *confusion) {
    if (pixels < 0 || classes < 1) return CAMFIX_ERR_ARGS;
    for (int64_t i = 0; i < pixels; ++i) {
        const int64_t pred = load_label(preds, pred_type, i), target = load_label(targets, target_type, i);
        /* Unsigned comparisons: a negative label wraps above classes. */
        if ((uint64_t)pred >= (uint64_t)classes) return CAMFIX_ERR_VALUES;
        if (use_ignore && target == ignore_index) continue;
        if ((uint64_t)target >= (uint64_t)classes) return CAMFIX_ERR_VALUES;
        confusion[target * classes + pred]++;
    }
    return CAMFIX_OK;
}
