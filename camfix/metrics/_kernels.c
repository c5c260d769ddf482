/*
 * camfix.metrics._kernels: the compiled kernels as a CPython extension module, built with the package (setup.py).
 *
 * Arrays come in through the buffer protocol (NumPy arrays, C-contiguous), and every shape, element type and
 * index the C code relies on is checked here, so a wrong call raises TypeError or ValueError instead of reading
 * out of bounds. Each function returns the kernel's status (0, or a negative CAMFIX_ERR_* code) for
 * camfix/metrics/_native.py to turn into the right exception, and runs the kernel without the GIL, so threads
 * may evaluate disjoint slices of a batch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_kernels.h"

typedef enum { FLOAT, SIGNED, UNSIGNED } Kind;

/* The element kind of a buffer from its struct format ("d", "<f", "?", "l", ...); -1 for anything else. */
static int element_kind(const Py_buffer *view) {
    const char *format = view->format ? view->format : "B";
    if (*format == '@' || *format == '=') ++format;
#if PY_LITTLE_ENDIAN
    if (*format == '<') ++format;
#else
    if (*format == '>' || *format == '!') ++format;
#endif
    if (format[0] == '\0' || format[1] != '\0') return -1;
    switch (format[0]) {
        case 'f': case 'd': return FLOAT;
        case 'b': case 'h': case 'i': case 'l': case 'q': case 'n': return SIGNED;
        case '?': case 'B': case 'H': case 'I': case 'L': case 'Q': case 'N': return UNSIGNED;
        default: return -1;
    }
}

/* A C-contiguous buffer of `ndim` dimensions (ndim < 0: any) whose elements are of `kind` and `itemsize`
 * (itemsize 0: any). On failure, sets the exception and leaves nothing to release. */
static int get_array(PyObject *object, const char *name, int writable, int ndim, int kind, Py_ssize_t itemsize,
                     Py_buffer *view) {
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(object, view, flags) != 0) return -1;
    if (ndim >= 0 && view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimensions, got %d", name, ndim, view->ndim);
    } else if (element_kind(view) != kind || (itemsize && view->itemsize != itemsize)) {
        PyErr_Format(PyExc_TypeError, "%s has elements of format '%s' and size %zd, not the expected type", name,
                     view->format ? view->format : "B", view->itemsize);
    } else {
        return 0;
    }
    PyBuffer_Release(view);
    return -1;
}

static int same_shape(const Py_buffer *a, const Py_buffer *b, const char *name) {
    if (a->ndim == b->ndim) {
        int equal = 1;
        for (int d = 0; d < a->ndim; ++d) equal &= a->shape[d] == b->shape[d];
        if (equal) return 1;
    }
    PyErr_Format(PyExc_ValueError, "%s must have the shape of the maps", name);
    return 0;
}

static int fits_int32(Py_ssize_t value, const char *name) {
    if (value <= INT32_MAX) return 1;
    PyErr_Format(PyExc_ValueError, "%s is %zd, above the kernels' limit %d", name, value, INT32_MAX);
    return 0;
}

static void release(Py_buffer *views, int count) {
    for (int i = 0; i < count; ++i) PyBuffer_Release(&views[i]);
}

PyDoc_STRVAR(box_ious_doc,
"box_ious(maps, thresholds, boxes, box_start, reference, single, multi, iou_single, iou_multi, ambiguous) -> int\n\n"
"The component sweep of _components.c: fills iou_single, iou_multi (float64 (N, T)) and ambiguous (bool (N, T))\n"
"for maps (float32 or float64 (N, H, W)), thresholds (float64 (T,)) and the ground-truth boxes (int64 (B, 4),\n"
"map i's being rows box_start[i] to box_start[i + 1] - 1). Returns the kernel's status.");

static PyObject *box_ious(PyObject *self, PyObject *args) {
    PyObject *objects[8];
    int reference, single, multi;
    if (!PyArg_ParseTuple(args, "OOOOpppOOO:box_ious", &objects[0], &objects[1], &objects[2], &objects[3],
                          &reference, &single, &multi, &objects[4], &objects[5], &objects[6]))
        return NULL;
    Py_buffer v[7];
    int held = 0;
    static const char *names[7] = {"maps", "thresholds", "boxes", "box_start", "iou_single", "iou_multi",
                                   "ambiguous"};
    const int ndims[7] = {3, 1, 2, 1, 2, 2, 2}, kinds[7] = {FLOAT, FLOAT, SIGNED, SIGNED, FLOAT, FLOAT, UNSIGNED};
    const Py_ssize_t sizes[7] = {0, 8, 8, 8, 8, 8, 1};
    const int writable[7] = {0, 0, 0, 0, 1, 1, 1};
    for (; held < 7; ++held)
        if (get_array(objects[held], names[held], writable[held], ndims[held], kinds[held], sizes[held],
                      &v[held]) != 0) {
            release(v, held);
            return NULL;
        }
    const Py_ssize_t count = v[0].shape[0], height = v[0].shape[1], width = v[0].shape[2];
    const Py_ssize_t n_thresholds = v[1].shape[0], n_boxes = v[2].shape[0];
    const int64_t *box_start = (const int64_t *)v[3].buf;
    int ok = fits_int32(count, "the number of maps") && fits_int32(height, "the map height") &&
             fits_int32(width, "the map width") && fits_int32(n_thresholds, "the number of thresholds");
    if (ok && (v[2].shape[1] != 4 || v[3].shape[0] != count + 1)) {
        PyErr_SetString(PyExc_ValueError, "boxes must be (B, 4) and box_start (N + 1,)");
        ok = 0;
    }
    for (Py_ssize_t i = 0; ok && i < count; ++i)
        if (box_start[i] < 0 || box_start[i] >= box_start[i + 1] || box_start[i + 1] > n_boxes) {
            PyErr_SetString(PyExc_ValueError, "box_start must rise from 0 to len(boxes), one box per map at least");
            ok = 0;
        }
    for (int o = 4; ok && o < 7; ++o)
        if (v[o].shape[0] != count || v[o].shape[1] != n_thresholds) {
            PyErr_Format(PyExc_ValueError, "%s must have shape (N, T)", names[o]);
            ok = 0;
        }
    if (!ok) {
        release(v, 7);
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = camfix_box_ious(v[0].buf, v[0].itemsize == 8, (int32_t)count, (int32_t)height, (int32_t)width,
                             (const double *)v[1].buf, (int32_t)n_thresholds, reference,
                             (const int64_t *)v[2].buf, box_start, single, multi, (double *)v[4].buf,
                             (double *)v[5].buf, (uint8_t *)v[6].buf);
    Py_END_ALLOW_THREADS
    release(v, 7);
    return PyLong_FromLong(status);
}

PyDoc_STRVAR(level_histograms_doc,
"level_histograms(maps, masks, ignore, edges, strict, foreground, background) -> int\n\n"
"Adds to foreground and background (int64 (R, E + 1), R = N for one row per map, else 1) the pixels of each\n"
"level, level = #{edges < value} (strict) or #{edges <= value}: masked pixels to foreground, the others to\n"
"background unless ignore (bytes (N, H, W), or None) marks them. maps: float32 or float64 (N, H, W); masks:\n"
"bytes (N, H, W), non-zero is true; edges: float64 (E,), non-decreasing, in [0, 1]. Returns the kernel's\n"
"status.");

static PyObject *level_histograms(PyObject *self, PyObject *args) {
    PyObject *maps, *masks, *ignore, *edges, *foreground, *background;
    int strict;
    if (!PyArg_ParseTuple(args, "OOOOpOO:level_histograms", &maps, &masks, &ignore, &edges, &strict, &foreground,
                          &background))
        return NULL;
    Py_buffer v[6];
    int held = 0;
    PyObject *objects[6] = {maps, masks, edges, foreground, background, ignore};
    static const char *names[6] = {"maps", "masks", "edges", "foreground", "background", "ignore"};
    const int ndims[6] = {3, 3, 1, 2, 2, 3}, kinds[6] = {FLOAT, UNSIGNED, FLOAT, SIGNED, SIGNED, UNSIGNED};
    const Py_ssize_t sizes[6] = {0, 1, 8, 8, 8, 1};
    const int n_arrays = ignore == Py_None ? 5 : 6;
    for (; held < n_arrays; ++held)
        if (get_array(objects[held], names[held], held == 3 || held == 4, ndims[held], kinds[held], sizes[held],
                      &v[held]) != 0) {
            release(v, held);
            return NULL;
        }
    const Py_ssize_t count = v[0].shape[0], n_edges = v[2].shape[0], rows = v[3].shape[0];
    int ok = same_shape(&v[0], &v[1], "masks") && (n_arrays == 5 || same_shape(&v[0], &v[5], "ignore")) &&
             fits_int32(n_edges, "the number of edges");
    if (ok && (n_edges < 1 || (rows != count && rows != 1) || v[3].shape[1] != n_edges + 1 ||
               v[4].shape[0] != rows || v[4].shape[1] != n_edges + 1)) {
        PyErr_SetString(PyExc_ValueError, "edges must be (E,), E >= 1, and the histograms (N or 1, E + 1)");
        ok = 0;
    }
    /* The kernel's cell table holds edges in [0, 1], in order. */
    const double *edge_values = (const double *)v[2].buf;
    for (Py_ssize_t e = 0; ok && e < n_edges; ++e)
        if (!(edge_values[e] >= 0.0 && edge_values[e] <= 1.0) || (e > 0 && edge_values[e] < edge_values[e - 1])) {
            PyErr_SetString(PyExc_ValueError, "edges must be non-decreasing values in [0, 1]");
            ok = 0;
        }
    if (!ok) {
        release(v, n_arrays);
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = camfix_level_histograms(v[0].buf, v[0].itemsize == 8, count, v[0].shape[1] * v[0].shape[2],
                                     (const uint8_t *)v[1].buf, n_arrays == 6 ? (const uint8_t *)v[5].buf : NULL,
                                     (const double *)v[2].buf, (int32_t)n_edges, strict, rows == count,
                                     (int64_t *)v[3].buf, (int64_t *)v[4].buf);
    Py_END_ALLOW_THREADS
    release(v, n_arrays);
    return PyLong_FromLong(status);
}

/* The label type of an integer buffer, or -1. */
static int label_type(const Py_buffer *view) {
    const int kind = element_kind(view);
    if (kind != SIGNED && kind != UNSIGNED) return -1;
    switch (view->itemsize) {
        case 1: return kind == SIGNED ? CAMFIX_I8 : CAMFIX_U8;
        case 2: return kind == SIGNED ? CAMFIX_I16 : CAMFIX_U16;
        case 4: return kind == SIGNED ? CAMFIX_I32 : CAMFIX_U32;
        case 8: return kind == SIGNED ? CAMFIX_I64 : CAMFIX_U64;
        default: return -1;
    }
}

static int get_labels(PyObject *object, const char *name, Py_buffer *view, int *type) {
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return -1;
    *type = label_type(view);
    if (*type >= 0) return 0;
    PyErr_Format(PyExc_TypeError, "%s must hold integers, got elements of format '%s'", name,
                 view->format ? view->format : "B");
    PyBuffer_Release(view);
    return -1;
}

PyDoc_STRVAR(confusion_doc,
"confusion(preds, targets, classes, ignore_index, confusion) -> int\n\n"
"Adds to confusion (int64 (C, C), rows targets) one count per pixel of the integer label arrays preds and\n"
"targets (same shape, any integer type), leaving out targets equal to ignore_index (an int, or None).\n"
"Returns the kernel's status (CAMFIX_ERR_VALUES: a label outside [0, C)).");

static PyObject *confusion(PyObject *self, PyObject *args) {
    PyObject *preds, *targets, *ignore, *matrix;
    Py_ssize_t classes;
    if (!PyArg_ParseTuple(args, "OOnOO:confusion", &preds, &targets, &classes, &ignore, &matrix)) return NULL;
    long long ignore_index = 0;
    if (ignore != Py_None) {
        ignore_index = PyLong_AsLongLong(ignore);
        if (ignore_index == -1 && PyErr_Occurred()) return NULL;
    }
    Py_buffer v[3];
    int pred_type, target_type;
    if (get_labels(preds, "preds", &v[0], &pred_type) != 0) return NULL;
    if (get_labels(targets, "targets", &v[1], &target_type) != 0) {
        release(v, 1);
        return NULL;
    }
    if (get_array(matrix, "confusion", 1, 2, SIGNED, 8, &v[2]) != 0) {
        release(v, 2);
        return NULL;
    }
    int ok = same_shape(&v[0], &v[1], "targets");
    if (ok && (classes < 1 || v[2].shape[0] != classes || v[2].shape[1] != classes)) {
        PyErr_SetString(PyExc_ValueError, "confusion must be (classes, classes), classes >= 1");
        ok = 0;
    }
    if (!ok) {
        release(v, 3);
        return NULL;
    }
    const int64_t pixels = (int64_t)(v[0].len / v[0].itemsize);
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = camfix_confusion(v[0].buf, (camfix_label_type)pred_type, v[1].buf, (camfix_label_type)target_type,
                              pixels, (int64_t)classes, ignore != Py_None, (int64_t)ignore_index,
                              (int64_t *)v[2].buf);
    Py_END_ALLOW_THREADS
    release(v, 3);
    return PyLong_FromLong(status);
}

static PyMethodDef methods[] = {
    {"box_ious", box_ious, METH_VARARGS, box_ious_doc},
    {"level_histograms", level_histograms, METH_VARARGS, level_histograms_doc},
    {"confusion", confusion, METH_VARARGS, confusion_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "camfix.metrics' compiled kernels (see camfix/metrics/_native.py, which is their only caller).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    camfix_init();
    PyObject *result = PyModule_Create(&module);
    if (result == NULL) return NULL;
    if (PyModule_AddIntConstant(result, "MAX_LEVELS", CAMFIX_MAX_LEVELS) != 0 ||
        PyModule_AddIntConstant(result, "ERR_ALLOC", CAMFIX_ERR_ALLOC) != 0 ||
        PyModule_AddIntConstant(result, "ERR_VALUES", CAMFIX_ERR_VALUES) != 0) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}
