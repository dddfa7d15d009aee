/*
 * The canonical encoding's record columns (docs/sealing.md), packed in C:
 * kextlog_store/seal/encoding.py is the reference this must equal, byte for
 * byte (tests/test_seal.py compares them).  Python objects cost about
 * 1 us a record to pack in Python and as much again to read from SQLite;
 * here both take a few tens of nanoseconds.
 *
 * pack_rows(rows) packs ingest's rows (tuples of 9 or 12 values, seq
 * first); Reader(path).read(base, lo, hi) reads the records with ids
 * base+lo..base+hi from a SQLite store, read-only, in one snapshot.  Both
 * return (columns, count, first_seq, last_seq, dense, time_min, time_max,
 * time_sum, mono_sum): the 12 packed columns and what verify and the chain
 * entries need of them; sums wrap as int64.  A value of the wrong type
 * raises ValueError.  A Reader is for one thread at a time; read() lets
 * other threads run meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { INTS = 7, COLUMNS = 12, BUFFERS = 18 };

/* Buffers: 0-6 the integer columns; 7/8 process lengths/bytes, 9/10
 * message lengths/bytes; 11/12 syslog_priority flags/values, 13/14 facility
 * flags/values; 15/16/17 fields flags/lengths/bytes. */
struct kextlog_buffer {
    char *data;
    size_t length, capacity;
};

/* Packing needs no Python object (Reader.read runs without the GIL): a
 * failure is noted here and raised once the GIL is held again (kextlog_raise),
 * unless it is a Python error already set (pack_rows). */
struct kextlog_pack {
    struct kextlog_buffer buffers[BUFFERS];
    Py_ssize_t count;
    int64_t first_seq, last_seq, time_min, time_max;
    uint64_t time_sum, mono_sum;
    int dense;
    int out_of_memory;
    char error[160];
};

static int kextlog_put(struct kextlog_pack *pack, int index, const void *data, size_t length)
{
    struct kextlog_buffer *buffer = &pack->buffers[index];
    if (buffer->length + length > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity * 2 : 4096;
        while (capacity < buffer->length + length)
            capacity *= 2;
        char *grown = realloc(buffer->data, capacity);
        if (grown == NULL) {
            pack->out_of_memory = 1;
            return -1;
        }
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->length, data, length);
    buffer->length += length;
    return 0;
}

static int kextlog_put_i64(struct kextlog_pack *pack, int index, int64_t value)
{
    struct kextlog_buffer *buffer = &pack->buffers[index];
    uint64_t bits = (uint64_t)value;
    if (buffer->length + 8 > buffer->capacity)
        return kextlog_put(pack, index, (unsigned char[8]){
            (unsigned char)bits, (unsigned char)(bits >> 8), (unsigned char)(bits >> 16),
            (unsigned char)(bits >> 24), (unsigned char)(bits >> 32), (unsigned char)(bits >> 40),
            (unsigned char)(bits >> 48), (unsigned char)(bits >> 56)}, 8);
    unsigned char *out = (unsigned char *)buffer->data + buffer->length;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(bits >> (8 * i));
    buffer->length += 8;
    return 0;
}

/* Room for count more records in each fixed-size buffer: no growth on the way. */
static int kextlog_reserve(struct kextlog_pack *pack, size_t count)
{
    static const size_t sizes[BUFFERS] = {8, 8, 8, 8, 8, 8, 8, 4, 0, 4, 0, 1, 8, 1, 8, 1, 4, 0};
    for (int i = 0; i < BUFFERS; i++) {
        struct kextlog_buffer *buffer = &pack->buffers[i];
        size_t wanted = buffer->length + sizes[i] * count;
        if (sizes[i] && wanted > buffer->capacity) {
            char *grown = realloc(buffer->data, wanted);
            if (grown == NULL) {
                pack->out_of_memory = 1;
                return -1;
            }
            buffer->data = grown;
            buffer->capacity = wanted;
        }
    }
    return 0;
}

static int kextlog_put_text(struct kextlog_pack *pack, int lengths, const char *data, size_t length)
{
    unsigned char bytes[4];
    if (length > UINT32_MAX) {
        snprintf(pack->error, sizeof pack->error, "text longer than 4 GiB");
        return -1;
    }
    for (int i = 0; i < 4; i++)
        bytes[i] = (unsigned char)((uint32_t)length >> (8 * i));
    if (kextlog_put(pack, lengths, bytes, 4) < 0)
        return -1;
    return kextlog_put(pack, lengths + 1, data, length);
}

static int kextlog_flag(struct kextlog_pack *pack, int buffer, int present)
{
    unsigned char flag = present ? 1 : 0;
    return kextlog_put(pack, buffer, &flag, 1);
}

static void kextlog_raise(struct kextlog_pack *pack)
{
    if (pack->out_of_memory)
        PyErr_NoMemory();
    else if (pack->error[0])
        PyErr_SetString(PyExc_ValueError, pack->error);
}

/* What every record adds besides its columns: seq order, the time window, sums. */
static void kextlog_note(struct kextlog_pack *pack, int64_t seq, int64_t time_ns, int64_t mono_ns)
{
    if (pack->count == 0) {
        pack->first_seq = seq;
        pack->time_min = pack->time_max = time_ns;
        pack->dense = 1;
    } else {
        if (seq != pack->last_seq + 1)
            pack->dense = 0;
        if (time_ns < pack->time_min)
            pack->time_min = time_ns;
        if (time_ns > pack->time_max)
            pack->time_max = time_ns;
    }
    pack->last_seq = seq;
    pack->time_sum += (uint64_t)time_ns;
    pack->mono_sum += (uint64_t)mono_ns;
    pack->count++;
}

static void kextlog_pack_free(struct kextlog_pack *pack)
{
    for (int i = 0; i < BUFFERS; i++)
        free(pack->buffers[i].data);
}

static PyObject *kextlog_joined(struct kextlog_pack *pack, int first, int last)
{
    size_t length = 0;
    for (int i = first; i <= last; i++)
        length += pack->buffers[i].length;
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
    if (bytes == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(bytes);
    for (int i = first; i <= last; i++) {
        if (pack->buffers[i].length)
            memcpy(out, pack->buffers[i].data, pack->buffers[i].length);
        out += pack->buffers[i].length;
    }
    return bytes;
}

static PyObject *kextlog_result(struct kextlog_pack *pack)
{
    static const int spans[COLUMNS][2] = {
        {0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6},
        {7, 8}, {9, 10}, {11, 12}, {13, 14}, {15, 17},
    };
    PyObject *columns = PyList_New(COLUMNS);
    if (columns == NULL)
        return NULL;
    for (int i = 0; i < COLUMNS; i++) {
        PyObject *column = kextlog_joined(pack, spans[i][0], spans[i][1]);
        if (column == NULL) {
            Py_DECREF(columns);
            return NULL;
        }
        PyList_SET_ITEM(columns, i, column);
    }
    return Py_BuildValue("(NnLLiLLLL)", columns, pack->count, (long long)pack->first_seq,
        (long long)pack->last_seq, pack->dense, (long long)pack->time_min,
        (long long)pack->time_max, (long long)(int64_t)pack->time_sum,
        (long long)(int64_t)pack->mono_sum);
}

/* -- rows from ingest ------------------------------------------------------ */

static int kextlog_int(PyObject *value, int64_t *out)
{
    int overflow = 0;
    long long number;
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_ValueError, "not a 64-bit integer: %R", value);
        return -1;
    }
    number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (number == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "not a 64-bit integer: %R", value);
        return -1;
    }
    *out = (int64_t)number;
    return 0;
}

static int kextlog_text(struct kextlog_pack *pack, int lengths, PyObject *value)
{
    Py_ssize_t length;
    const char *data;
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_ValueError, "not text: %R", value);
        return -1;
    }
    data = PyUnicode_AsUTF8AndSize(value, &length);
    if (data == NULL)
        return -1;
    return kextlog_put_text(pack, lengths, data, (size_t)length);
}

static int kextlog_row(struct kextlog_pack *pack, PyObject *row)
{
    int64_t ints[INTS];
    Py_ssize_t width;
    if (!PyTuple_Check(row) || ((width = PyTuple_GET_SIZE(row)) != 9 && width != 12)) {
        PyErr_SetString(PyExc_ValueError, "a row is a tuple of 9 or 12 values");
        return -1;
    }
    for (int i = 0; i < INTS; i++)
        if (kextlog_int(PyTuple_GET_ITEM(row, i), &ints[i]) < 0 ||
            kextlog_put_i64(pack, i, ints[i]) < 0)
            return -1;
    if (kextlog_text(pack, 7, PyTuple_GET_ITEM(row, 7)) < 0 ||
        kextlog_text(pack, 9, PyTuple_GET_ITEM(row, 8)) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        PyObject *value = width == 12 ? PyTuple_GET_ITEM(row, 9 + i) : Py_None;
        int64_t number;
        if (kextlog_flag(pack, 11 + 2 * i, value != Py_None) < 0)
            return -1;
        if (value != Py_None &&
            (kextlog_int(value, &number) < 0 || kextlog_put_i64(pack, 12 + 2 * i, number) < 0))
            return -1;
    }
    PyObject *fields = width == 12 ? PyTuple_GET_ITEM(row, 11) : Py_None;
    if (kextlog_flag(pack, 15, fields != Py_None) < 0)
        return -1;
    if (fields != Py_None && kextlog_text(pack, 16, fields) < 0)
        return -1;
    kextlog_note(pack, ints[0], ints[1], ints[2]);
    return 0;
}

static PyObject *kextlog_pack_rows(PyObject *module, PyObject *rows)
{
    struct kextlog_pack pack;
    PyObject *sequence = PySequence_Fast(rows, "rows: a sequence of tuples");
    (void)module;
    if (sequence == NULL)
        return NULL;
    memset(&pack, 0, sizeof pack);
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    PyObject **items = PySequence_Fast_ITEMS(sequence);
    PyObject *result = NULL;
    if (kextlog_reserve(&pack, (size_t)count) < 0) {
        kextlog_raise(&pack);
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++)
        if (kextlog_row(&pack, items[i]) < 0) {
            kextlog_raise(&pack);
            goto done;
        }
    result = kextlog_result(&pack);
done:
    Py_DECREF(sequence);
    kextlog_pack_free(&pack);
    return result;
}

/* -- records from a SQLite store --------------------------------------------- */

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt *select;
} kextlog_reader;

static const char *const kextlog_names[COLUMNS] = {
    "seq", "time_ns", "mono_ns", "level", "flags", "pid", "tid", "process", "message",
    "syslog_priority", "facility", "fields",
};

static int kextlog_sqlite_error(kextlog_reader *reader)
{
    PyErr_Format(PyExc_OSError, "SQLite: %s", reader->db ? sqlite3_errmsg(reader->db) : "out of memory");
    return -1;
}

static int kextlog_type(kextlog_reader *reader, struct kextlog_pack *pack, int column, int wanted,
    int64_t seq)
{
    int type = sqlite3_column_type(reader->select, column);
    if (type == wanted || (column >= 9 && type == SQLITE_NULL))
        return 0;
    snprintf(pack->error, sizeof pack->error, "seq %lld: %s is not %s", (long long)seq,
        kextlog_names[column], wanted == SQLITE_INTEGER ? "an integer" : "text");
    return -1;
}

static int kextlog_record(kextlog_reader *reader, struct kextlog_pack *pack, int64_t base)
{
    sqlite3_stmt *row = reader->select;
    int64_t ints[INTS];
    ints[0] = sqlite3_column_int64(row, 0) - base;
    for (int i = 1; i < INTS; i++) {
        if (kextlog_type(reader, pack, i, SQLITE_INTEGER, ints[0]) < 0)
            return -1;
        ints[i] = sqlite3_column_int64(row, i);
    }
    for (int i = 0; i < INTS; i++)
        if (kextlog_put_i64(pack, i, ints[i]) < 0)
            return -1;
    for (int i = 0; i < 2; i++) {
        if (kextlog_type(reader, pack, 7 + i, SQLITE_TEXT, ints[0]) < 0)
            return -1;
        const char *text = (const char *)sqlite3_column_text(row, 7 + i);
        if (kextlog_put_text(pack, 7 + 2 * i, text, (size_t)sqlite3_column_bytes(row, 7 + i)) < 0)
            return -1;
    }
    for (int i = 0; i < 2; i++) {
        int present = sqlite3_column_type(row, 9 + i) != SQLITE_NULL;
        if (kextlog_type(reader, pack, 9 + i, SQLITE_INTEGER, ints[0]) < 0 ||
            kextlog_flag(pack, 11 + 2 * i, present) < 0)
            return -1;
        if (present && kextlog_put_i64(pack, 12 + 2 * i, sqlite3_column_int64(row, 9 + i)) < 0)
            return -1;
    }
    int present = sqlite3_column_type(row, 11) != SQLITE_NULL;
    if (kextlog_type(reader, pack, 11, SQLITE_TEXT, ints[0]) < 0 || kextlog_flag(pack, 15, present) < 0)
        return -1;
    if (present) {
        const char *text = (const char *)sqlite3_column_text(row, 11);
        if (kextlog_put_text(pack, 16, text, (size_t)sqlite3_column_bytes(row, 11)) < 0)
            return -1;
    }
    kextlog_note(pack, ints[0], ints[1], ints[2]);
    return 0;
}

static PyObject *kextlog_reader_read(kextlog_reader *reader, PyObject *args)
{
    long long base, lo, hi;
    struct kextlog_pack pack;
    PyObject *result = NULL;
    int status;
    if (!PyArg_ParseTuple(args, "LLL", &base, &lo, &hi))
        return NULL;
    if (reader->select == NULL) {
        PyErr_SetString(PyExc_ValueError, "the reader is closed");
        return NULL;
    }
    memset(&pack, 0, sizeof pack);
    sqlite3_reset(reader->select);
    sqlite3_bind_int64(reader->select, 1, base + lo);
    sqlite3_bind_int64(reader->select, 2, base + hi);
    /* Without the GIL: verify reads the next entry while it hashes this one. */
    Py_BEGIN_ALLOW_THREADS
    while ((status = sqlite3_step(reader->select)) == SQLITE_ROW)
        if (kextlog_record(reader, &pack, base) < 0)
            break;
    Py_END_ALLOW_THREADS
    if (status == SQLITE_ROW) {
        kextlog_raise(&pack);
        goto done;
    }
    if (status != SQLITE_DONE) {
        kextlog_sqlite_error(reader);
        goto done;
    }
    result = kextlog_result(&pack);
done:
    sqlite3_reset(reader->select);
    kextlog_pack_free(&pack);
    return result;
}

static void kextlog_reader_close_db(kextlog_reader *reader)
{
    if (reader->select != NULL)
        sqlite3_finalize(reader->select);
    if (reader->db != NULL) {
        sqlite3_exec(reader->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(reader->db);
    }
    reader->select = NULL;
    reader->db = NULL;
}

static PyObject *kextlog_reader_close(kextlog_reader *reader, PyObject *unused)
{
    (void)unused;
    kextlog_reader_close_db(reader);
    Py_RETURN_NONE;
}

static int kextlog_reader_init(kextlog_reader *reader, PyObject *args, PyObject *kwargs)
{
    const char *uri;
    static char *keywords[] = {"uri", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s", keywords, &uri))
        return -1;
    kextlog_reader_close_db(reader);
    /* Read-only, and one snapshot from here to close(): BEGIN and a first read.
     * No mutex: a Reader is one thread's at a time (it saves a sixth of a read). */
    if (sqlite3_open_v2(uri, &reader->db,
            SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_exec(reader->db, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(reader->db,
            "SELECT id, time_ns, mono_ns, level, flags, pid, tid, process, message,"
            " syslog_priority, facility, fields FROM records WHERE id >= ?1 AND id <= ?2 ORDER BY id",
            -1, &reader->select, NULL) != SQLITE_OK) {
        kextlog_sqlite_error(reader);
        kextlog_reader_close_db(reader);
        return -1;
    }
    return 0;
}

static void kextlog_reader_dealloc(kextlog_reader *reader)
{
    kextlog_reader_close_db(reader);
    Py_TYPE(reader)->tp_free((PyObject *)reader);
}

static PyMethodDef kextlog_reader_methods[] = {
    {"read", (PyCFunction)kextlog_reader_read, METH_VARARGS,
        "read(base, lo, hi): the records with ids base+lo..base+hi, packed."},
    {"close", (PyCFunction)kextlog_reader_close, METH_NOARGS, "Ends the snapshot."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject kextlog_reader_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kextlog_store.seal._columns.Reader",
    .tp_basicsize = sizeof(kextlog_reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reader(uri): a read-only snapshot of a SQLite store's records.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)kextlog_reader_init,
    .tp_dealloc = (destructor)kextlog_reader_dealloc,
    .tp_methods = kextlog_reader_methods,
};

static PyMethodDef kextlog_methods[] = {
    {"pack_rows", kextlog_pack_rows, METH_O, "pack_rows(rows): ingest's rows, packed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kextlog_module = {
    PyModuleDef_HEAD_INIT, "_columns", NULL, -1, kextlog_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__columns(void)
{
    if (PyType_Ready(&kextlog_reader_type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&kextlog_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&kextlog_reader_type);
    if (PyModule_AddObject(module, "Reader", (PyObject *)&kextlog_reader_type) < 0) {
        Py_DECREF(&kextlog_reader_type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
