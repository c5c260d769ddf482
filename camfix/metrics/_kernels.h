/*
 * The plain C kernels of camfix.metrics, shared by the two files that implement them (_components.c: the box
 * sweep; _counts.c: histograms and confusion matrices) and the one that exposes them to Python (_kernels.c).
 * None of them touches Python objects, so the module runs them without the GIL.
 */
#ifndef CAMFIX_KERNELS_H
#define CAMFIX_KERNELS_H

#include <stdint.h>

/* CAMFIX_ERR_VALUES: a map value outside [0, 1] (or NaN), or a label outside the classes; the caller then finds
 * and reports it (the kernels only notice). */
enum { CAMFIX_OK = 0, CAMFIX_ERR_ALLOC = -1, CAMFIX_ERR_ARGS = -2, CAMFIX_ERR_VALUES = -3 };
/* Levels are uint16 in the sweep (0 to the number of thresholds): at most this many thresholds in its
 * continuous mode. */
enum { CAMFIX_MAX_LEVELS = 65534 };

/* Element types of the integer label images camfix_confusion reads. */
typedef enum {
    CAMFIX_U8, CAMFIX_I8, CAMFIX_U16, CAMFIX_I16, CAMFIX_U32, CAMFIX_I32, CAMFIX_U64, CAMFIX_I64
} camfix_label_type;

/* Fills the sweep's lookup tables; called once, when the module is imported. */
void camfix_init(void);

int camfix_box_ious(const void *maps, int32_t is_float64, int32_t count, int32_t height, int32_t width,
                    const double *thresholds, int32_t n_thresholds, int32_t reference, const int64_t *gt,
                    const int64_t *gt_start, int32_t want_single, int32_t want_multi, double *iou_single,
                    double *iou_multi, uint8_t *ambiguous);

int camfix_level_histograms(const void *maps, int32_t is_float64, int64_t count, int64_t pixels,
                            const uint8_t *masks, const uint8_t *ignore, const double *edges, int32_t n_edges,
                            int32_t strict, int32_t per_image, int64_t *foreground, int64_t *background);

int camfix_confusion(const void *preds, camfix_label_type pred_type, const void *targets,
                     camfix_label_type target_type, int64_t pixels, int64_t classes, int32_t use_ignore,
                     int64_t ignore_index, int64_t *confusion);

#endif
