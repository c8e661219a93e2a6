/*
 * test_model_file.c - the model container: SHA-256 against known vectors and
 * sha256sum, model creation shape rules, architecture JSON, save/load round
 * trips of the three reference architectures (same params, metadata, id and
 * bytes), and a table of hostile or broken files that must each fail with
 * the right code and a message naming the file and the culprit. Every prefix
 * of a valid file and single-byte corruptions of it must fail cleanly or
 * load, never crash (run under ASan by `make check`).
 */
#include "ad.h"
#include "model.h"
#include "safetensors.h"
#include "t.h"

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

static char tmpdir[256];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ------------------------------------------------------------------------ */

static void test_sha256_vectors(void)
{
    char hex[65];
    static const char *abc448 =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char *mil;

    ad_sha256_hex("", 0, hex);
    T_CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "sha256('')=%s", hex);
    ad_sha256_hex("abc", 3, hex);
    T_CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256('abc')=%s", hex);
    ad_sha256_hex(abc448, strlen(abc448), hex);
    T_CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "sha256(448 bits)=%s", hex);
    mil = malloc(1000000);
    memset(mil, 'a', 1000000);
    ad_sha256_hex(mil, 1000000, hex);
    T_CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "sha256(1e6 x 'a')=%s", hex);
    free(mil);
}

/* Lengths around the 55/56/64-byte padding boundaries, against sha256sum. */
static void test_sha256_vs_sha256sum(void)
{
    static const size_t lens[] = { 1, 55, 56, 57, 63, 64, 65, 119, 120, 1000 };
    unsigned char buf[1000];
    size_t i, k;

    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    for (k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        char path[300], cmd[400], line[128] = "", hex[65];
        FILE *f;

        snprintf(path, sizeof(path), "%s/sha.bin", tmpdir);
        f = fopen(path, "wb");
        fwrite(buf, 1, lens[k], f);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
        f = popen(cmd, "r");
        T_CHECK(f != NULL, "popen sha256sum");
        if (f == NULL)
            return;
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        pclose(f);
        ad_sha256_hex(buf, lens[k], hex);
        T_CHECK(strncmp(line, hex, 64) == 0, "len %zu: ours %s, sha256sum %.64s",
                lens[k], hex, line);
    }
}

/* ------------------------------------------------------------------------ */
/* creation rules                                                           */

static void test_create_shapes(void)
{
    ad_layer_spec seed[] = {
        { AD_LAYER_LSTM, 64, AD_ACT_TANH, 1 }, { AD_LAYER_LSTM, 32, AD_ACT_TANH, 1 },
        { AD_LAYER_LSTM, 64, AD_ACT_TANH, 1 }, { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } };
    ad_model *m = NULL;
    char err[256] = "";
    int rc;

    rc = ad_model_create(&m, 100, 1, seed, 4, err, sizeof(err));
    T_CHECK(rc == 0 && m != NULL, "rc=%d %s", rc, err);
    if (m == NULL)
        return;
    /* Keras counts: 4H(d+H+1) per LSTM, (d+1)U per dense */
    T_CHECK(m->n_params == 16896 + 12416 + 24832 + 65, "n_params=%zu", m->n_params);
    T_CHECK(m->layers[0].kernel == m->params, "layer 0 kernel first");
    T_CHECK(m->layers[0].recurrent == m->params + 1 * 256, "recurrent after kernel");
    T_CHECK(m->layers[0].bias == m->params + 256 + 64 * 256, "bias after recurrent");
    T_CHECK(m->layers[1].kernel == m->params + 16896, "layer 1 follows layer 0");
    T_CHECK(m->layers[3].bias + 1 == m->params + m->n_params, "block ends at last bias");
    T_CHECK(((uintptr_t)m->params & 63) == 0, "params 64-byte aligned");
    T_CHECK(m->layers[1].in_t == 100 && m->layers[1].in_d == 64 &&
            m->layers[3].out_t == 100 && m->layers[3].out_d == 1, "shapes");
    T_CHECK(strcmp(m->features[0], "f0") == 0 && m->scaler == AD_SCALER_NONE &&
            m->id[0] == '\0', "defaults");
    ad_model_free(m);
    ad_model_free(NULL);
}

typedef struct {
    int T, F, n;
    ad_layer_spec l[4];
    int code;
    const char *kw1, *kw2;
} create_case;

static void test_create_errors(void)
{
    static const create_case cases[] = {
        { 10, 1, 2, { { AD_LAYER_LSTM, 64, AD_ACT_TANH, 1 }, { AD_LAYER_DENSE, 10, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "layer 1 (dense): input is a sequence (10,64)", "flatten" },
        { 10, 1, 3, { { AD_LAYER_LSTM, 8, AD_ACT_TANH, 0 }, { AD_LAYER_LSTM, 8, AD_ACT_TANH, 1 },
                      { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "layer 1 (lstm): input is a vector (8)", "repeat_vector" },
        { 10, 1, 2, { { AD_LAYER_REPEAT_VECTOR, 10, 0, 0 }, { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "layer 0 (repeat_vector)", "needs a vector" },
        { 10, 1, 2, { { AD_LAYER_LSTM, 8, AD_ACT_TANH, 0 }, { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "layer 1 (time_distributed_dense)", "needs a sequence" },
        { 10, 1, 3, { { AD_LAYER_FLATTEN, 0, 0, 0 }, { AD_LAYER_FLATTEN, 0, 0, 0 },
                      { AD_LAYER_DENSE, 10, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "layer 1 (flatten)", "needs a sequence" },
        { 10, 2, 2, { { AD_LAYER_LSTM, 8, AD_ACT_TANH, 1 }, { AD_LAYER_TD_DENSE, 3, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "final output is a sequence (10,3)", "(10,2)" },
        { 10, 2, 2, { { AD_LAYER_FLATTEN, 0, 0, 0 }, { AD_LAYER_DENSE, 21, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "final output is a vector (21)", "vector (20)" },
        { 10, 1, 2, { { AD_LAYER_LSTM, 0, AD_ACT_TANH, 1 }, { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "layer 0 (lstm): units 0", "1..65536" },
        { 10, 1, 2, { { AD_LAYER_LSTM, 8, AD_ACT_SIGMOID, 1 }, { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } },
          AD_EARCH, "layer 0 (lstm): activation", "tanh or relu" },
        { 0, 1, 1, { { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } }, AD_ERANGE, "window 0", "" },
        { 10, 5000, 1, { { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } }, AD_ERANGE, "features 5000", "" },
        { 10, 1, 0, { { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } }, AD_EARCH, "1..64 layers", "" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const create_case *c = &cases[i];
        ad_model *m = (ad_model *)1;
        char err[256] = "";
        int rc = ad_model_create(&m, c->T, c->F, c->l, c->n, err, sizeof(err));

        T_CHECK(rc == c->code && m == NULL, "case %zu: rc=%d want %d", i, rc, c->code);
        T_CHECK(strstr(err, c->kw1) && strstr(err, c->kw2),
                "case %zu: message \"%s\" lacks \"%s\"/\"%s\"", i, err, c->kw1, c->kw2);
        T_NOTE("create error: %s", err);
    }
    {   /* 65 layers */
        ad_layer_spec many[65];
        ad_model *m = NULL;
        char err[256] = "";
        for (i = 0; i < 65; i++)
            many[i] = (ad_layer_spec){ AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 };
        T_CHECK(ad_model_create(&m, 4, 1, many, 65, err, sizeof(err)) == AD_EARCH &&
                m == NULL, "65 layers refused: %s", err);
    }
}

static void test_arch_json(void)
{
    static const struct { const char *json; const char *kw; } bad[] = {
        { "[{\"type\":\"lstm\",\"units\":4},{\"type\":\"dense\",\"units\":0}]",
          "architecture[1].units: expected an integer 1..65536" },
        { "[{\"type\":\"lstm\",\"units\":4.5}]", "architecture[0].units: expected an integer" },
        { "[{\"type\":\"lstm\",\"units\":\"4\"}]", "architecture[0].units: expected an integer" },
        { "[{\"type\":\"conv1d\",\"units\":4}]", "architecture[0].type: unknown layer type \"conv1d\"" },
        { "[{\"units\":4}]", "architecture[0].type" },
        { "[{\"type\":\"lstm\",\"units\":4,\"return_sequence\":true}]",
          "architecture[0].return_sequence: unknown key" },
        { "[{\"type\":\"lstm\",\"units\":4,\"return_sequences\":1}]",
          "architecture[0].return_sequences: expected true or false" },
        { "[{\"type\":\"dense\",\"units\":4,\"activation\":\"softmax\"}]",
          "architecture[0].activation" },
        { "[{\"type\":\"lstm\",\"units\":4,\"recurrent_activation\":\"hard_sigmoid\"}]",
          "architecture[0].recurrent_activation" },
        { "[{\"type\":\"repeat_vector\",\"n\":0}]", "architecture[0].n: expected an integer" },
        { "[{\"type\":\"flatten\"}, 3]", "architecture[1]: expected an object" },
        { "{\"type\":\"flatten\"}", "expected a JSON array" },
        { "[]", "expected 1..64 layers, found 0" },
        { "[{\"type\":\"flatten\"}] x", "not valid JSON" },
    };
    ad_layer_spec l[AD_MAX_LAYERS], l2[AD_MAX_LAYERS];
    ad_layer_spec ref[] = {
        { AD_LAYER_LSTM, 16, AD_ACT_RELU, 0 }, { AD_LAYER_REPEAT_VECTOR, 10, 0, 0 },
        { AD_LAYER_LSTM, 16, AD_ACT_TANH, 1 }, { AD_LAYER_TD_DENSE, 8, AD_ACT_SIGMOID, 0 },
        { AD_LAYER_FLATTEN, 0, 0, 0 }, { AD_LAYER_DENSE, 3, AD_ACT_TANH, 0 } };
    char err[256], *js;
    int n = -1, rc, i;
    size_t k;

    for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        err[0] = '\0';
        rc = ad_arch_parse(bad[k].json, l, AD_MAX_LAYERS, &n, err, sizeof(err));
        T_CHECK(rc == AD_EARCH && n == 0, "%s: rc=%d n=%d", bad[k].json, rc, n);
        T_CHECK(strstr(err, bad[k].kw) != NULL, "%s: message \"%s\" lacks \"%s\"",
                bad[k].json, err, bad[k].kw);
    }
    /* defaults: Keras' (tanh for lstm, linear for dense, no sequences) */
    rc = ad_arch_parse("[{\"type\":\"lstm\",\"units\":3,\"recurrent_activation\":\"sigmoid\"},"
                       "{\"type\":\"dense\",\"units\":2}]", l, AD_MAX_LAYERS, &n, err, sizeof(err));
    T_CHECK(rc == 0 && n == 2 && l[0].act == AD_ACT_TANH && !l[0].return_sequences &&
            l[1].act == AD_ACT_LINEAR && l[1].units == 2, "defaults rc=%d %s", rc, err);
    /* print -> parse is the identity */
    js = ad_arch_to_json(ref, 6);
    T_CHECK(js != NULL, "to_json");
    rc = ad_arch_parse(js, l2, AD_MAX_LAYERS, &n, err, sizeof(err));
    T_CHECK(rc == 0 && n == 6, "reparse rc=%d %s", rc, err);
    for (i = 0; rc == 0 && i < 6; i++)
        T_CHECK(l2[i].type == ref[i].type && l2[i].units == ref[i].units &&
                (ref[i].type == AD_LAYER_REPEAT_VECTOR || ref[i].type == AD_LAYER_FLATTEN ||
                 l2[i].act == ref[i].act) &&
                l2[i].return_sequences == ref[i].return_sequences, "layer %d differs", i);
    T_NOTE("%s", js);
    free(js);
    T_CHECK(ad_act_from_name("relu") == AD_ACT_RELU && ad_act_from_name("gelu") == -1 &&
            strcmp(ad_layer_type_name(AD_LAYER_TD_DENSE), "time_distributed_dense") == 0 &&
            ad_layer_type_from_name("flatten") == AD_LAYER_FLATTEN &&
            ad_layer_type_from_name("Flatten") == -1, "enum names");
}

/* ------------------------------------------------------------------------ */
/* round trips                                                              */

static ad_model *make_model(int T, int F, const ad_layer_spec *l, int n,
                            ad_scaler_type sc)
{
    ad_model *m = NULL;
    char err[256];
    size_t i;
    int rc = ad_model_create(&m, T, F, l, n, err, sizeof(err));

    T_CHECK(rc == 0, "create: %s", err);
    if (rc < 0)
        return NULL;
    for (i = 0; i < m->n_params; i++)
        m->params[i] = frand();
    {
        char **names = calloc((size_t)F, sizeof(char *));
        float *a = malloc((size_t)F * sizeof(float)), *b = malloc((size_t)F * sizeof(float));
        int f;
        for (f = 0; f < F; f++) {
            names[f] = malloc(32);
            snprintf(names[f], 32, f == 0 ? "pres\"s\\ure \xc2\xb0" : "sensor_%d", f);
            a[f] = frand() * 100.0f;
            b[f] = sc == AD_SCALER_MINMAX ? a[f] + 1.0f + fabsf(frand()) : 0.1f + fabsf(frand());
        }
        T_CHECK(ad_model_set_features(m, (const char *const *)names, F) == 0, "features");
        T_CHECK(ad_model_set_scaler(m, sc, a, b) == 0, "scaler");
        for (f = 0; f < F; f++)
            free(names[f]);
        free(names);
        free(a);
        free(b);
    }
    m->provenance = strdup("{\"source\":\"test_model_file\",\"note\":\"x\\ny\"}");
    m->training = strdup("{\"error\":{\"metric\":\"mae\",\"q99\":0.25}}");
    return m;
}

static int same_model(const ad_model *a, const ad_model *b)
{
    int i, ok = 1;

    ok &= a->window == b->window && a->n_features == b->n_features;
    ok &= a->n_layers == b->n_layers && a->n_params == b->n_params;
    if (!ok)
        return 0;
    ok &= memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0;
    for (i = 0; i < a->n_layers; i++) {
        const ad_layer *x = &a->layers[i], *y = &b->layers[i];
        ok &= x->spec.type == y->spec.type && x->spec.units == y->spec.units &&
              x->in_t == y->in_t && x->in_d == y->in_d &&
              x->out_t == y->out_t && x->out_d == y->out_d &&
              (x->kernel == NULL) == (y->kernel == NULL) &&
              (x->recurrent == NULL) == (y->recurrent == NULL) &&
              (x->bias == NULL) == (y->bias == NULL);
        if (x->kernel && y->kernel)
            ok &= (x->kernel - a->params) == (y->kernel - b->params);
        if (x->bias && y->bias)
            ok &= (x->bias - a->params) == (y->bias - b->params);
        if (x->spec.type == AD_LAYER_LSTM || x->spec.type == AD_LAYER_DENSE ||
            x->spec.type == AD_LAYER_TD_DENSE)
            ok &= x->spec.act == y->spec.act;
        if (x->spec.type == AD_LAYER_LSTM)
            ok &= x->spec.return_sequences == y->spec.return_sequences;
    }
    for (i = 0; i < a->n_features; i++)
        ok &= strcmp(a->features[i], b->features[i]) == 0;
    ok &= a->scaler == b->scaler;
    if (a->scaler != AD_SCALER_NONE)
        ok &= memcmp(a->scale_a, b->scale_a, (size_t)a->n_features * 4) == 0 &&
              memcmp(a->scale_b, b->scale_b, (size_t)a->n_features * 4) == 0;
    ok &= (a->provenance == NULL) == (b->provenance == NULL);
    ok &= a->provenance == NULL || strcmp(a->provenance, b->provenance) == 0;
    ok &= (a->training == NULL) == (b->training == NULL);
    ok &= a->training == NULL || strcmp(a->training, b->training) == 0;
    return ok;
}

static void roundtrip(const char *tag, int T, int F, const ad_layer_spec *l, int n,
                      ad_scaler_type sc)
{
    ad_model *m = make_model(T, F, l, n, sc), *back = NULL, *cl;
    char path[320], err[512] = "", cmd[400], line[128] = "";
    void *b1 = NULL, *b2 = NULL, *b3 = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0, hl;
    uint64_t h = 0;
    FILE *f;
    int rc, i;

    if (m == NULL)
        return;
    snprintf(path, sizeof(path), "%s/%s.safetensors", tmpdir, tag);
    rc = ad_model_save(m, path, err, sizeof(err));
    T_CHECK(rc == 0 && strlen(m->id) == 16, "%s: save rc=%d %s id=%s", tag, rc, err, m->id);
    rc = ad_model_load(&back, path, err, sizeof(err));
    T_CHECK(rc == 0 && back != NULL, "%s: load rc=%d %s", tag, rc, err);
    if (back == NULL)
        goto done;
    T_CHECK(same_model(m, back), "%s: loaded model differs from saved", tag);
    T_CHECK(strcmp(m->id, back->id) == 0, "%s: id saved %s loaded %s", tag, m->id, back->id);

    /* the id is what sha256sum shows */
    snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
    if ((f = popen(cmd, "r")) != NULL) {
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        pclose(f);
    }
    T_CHECK(strncmp(line, back->id, 16) == 0, "%s: id %s, sha256sum %.16s", tag, back->id, line);

    /* deterministic: same model, same bytes; load->serialize reproduces them */
    T_CHECK(ad_model_serialize(m, &b1, &l1) == 0 && ad_model_serialize(m, &b2, &l2) == 0 &&
            ad_model_serialize(back, &b3, &l3) == 0, "%s: serialize", tag);
    T_CHECK(l1 == l2 && l1 == l3 && memcmp(b1, b2, l1) == 0 && memcmp(b1, b3, l1) == 0,
            "%s: serialisation not deterministic (%zu %zu %zu)", tag, l1, l2, l3);
    for (i = 7; i >= 0; i--)
        h = h << 8 | ((unsigned char *)b1)[i];
    hl = (size_t)h;
    T_CHECK(hl % 8 == 0 && 8 + hl + m->n_params * 4 == l1, "%s: header %zu bytes, file %zu",
            tag, hl, l1);
    T_CHECK(((char *)b1)[8] == '{' && (((char *)b1)[8 + hl - 1] == ' ' ||
                                       ((char *)b1)[8 + hl - 1] == '}'), "%s: padding", tag);
    T_NOTE("%s: %zu params, file %zu bytes, header %zu, id %s", tag, m->n_params, l1, hl, m->id);

    /* clone is deep */
    cl = ad_model_clone(back);
    T_CHECK(cl != NULL && same_model(back, cl) && cl->params != back->params &&
            strcmp(cl->id, back->id) == 0, "%s: clone", tag);
    if (cl && cl->n_params > 0) {
        cl->params[0] += 1.0f;
        T_CHECK(cl->params[0] != back->params[0], "%s: clone shares params", tag);
    }
    ad_model_free(cl);
    {   /* load_mem gives the same */
        ad_model *mm = NULL;
        rc = ad_model_load_mem(&mm, b1, l1, "mem", err, sizeof(err));
        T_CHECK(rc == 0 && mm && same_model(m, mm) && strcmp(mm->id, m->id) == 0,
                "%s: load_mem rc=%d %s", tag, rc, err);
        ad_model_free(mm);
    }
done:
    free(b1);
    free(b2);
    free(b3);
    ad_model_free(back);
    ad_model_free(m);
}

/*
 * The Python writer (tools/adformat.py, used by the exporters) and ours must
 * agree byte for byte, so a model has one id whichever side wrote it: save
 * here, let Python read the file and write it again, compare the bytes.
 */
static void python_rewrite(const char *tag, int T, int F, const ad_layer_spec *l,
                           int n, ad_scaler_type sc)
{
    const char *src = getenv("AD_SRCDIR") ? getenv("AD_SRCDIR") : ".";
    const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char tool[400], a[320], b[330], err[512] = "", cmd[1400];
    ad_model *m, *back = NULL;
    void *ba = NULL, *bb = NULL;
    size_t la = 0, lb = 0;
    int rc;

    snprintf(tool, sizeof(tool), "%s/tools/adformat.py", src);
    if (access(tool, R_OK) != 0) {
        T_NOTE("%s: %s not found, Python comparison skipped", tag, tool);
        return;
    }
    m = make_model(T, F, l, n, sc);
    if (m == NULL)
        return;
    snprintf(a, sizeof(a), "%s/py_%s.safetensors", tmpdir, tag);
    snprintf(b, sizeof(b), "%s.py", a);
    T_CHECK(ad_model_save(m, a, err, sizeof(err)) == 0, "%s", err);
    snprintf(cmd, sizeof(cmd),
             "cd '%s/tools' && '%s' -c \"import adformat as f; m = f.read_model('%s'); "
             "md = m['metadata']; open('%s', 'wb').write(f.model_bytes(m['window'], "
             "m['features'], m['architecture'], m['weights'], m['scaler'], "
             "md.get('provenance'), md.get('training')))\"", src, py, a, b);
    rc = system(cmd);
    T_CHECK(rc == 0, "%s: python rewrite failed (%d): %s", tag, rc, cmd);
    if (rc == 0) {
        T_CHECK(ad_read_file(a, 1 << 24, &ba, &la, err, sizeof(err)) == 0 &&
                ad_read_file(b, 1 << 24, &bb, &lb, err, sizeof(err)) == 0, "%s", err);
        T_CHECK(la == lb && ba && bb && memcmp(ba, bb, la) == 0,
                "%s: C wrote %zu bytes, Python %zu, contents %s", tag, la, lb,
                la == lb && ba && bb && memcmp(ba, bb, la) == 0 ? "equal" : "differ");
        rc = ad_model_load(&back, b, err, sizeof(err));
        T_CHECK(rc == 0 && back && strcmp(back->id, m->id) == 0,
                "%s: python file rc=%d %s", tag, rc, err);
    }
    free(ba);
    free(bb);
    ad_model_free(back);
    ad_model_free(m);
}

static void test_python_writer_identical(void)
{
    ad_layer_spec s1[] = {
        { AD_LAYER_LSTM, 8, AD_ACT_TANH, 1 }, { AD_LAYER_LSTM, 4, AD_ACT_TANH, 1 },
        { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } };
    ad_layer_spec s2[] = {
        { AD_LAYER_LSTM, 6, AD_ACT_TANH, 0 }, { AD_LAYER_REPEAT_VECTOR, 5, 0, 0 },
        { AD_LAYER_LSTM, 6, AD_ACT_RELU, 1 }, { AD_LAYER_TD_DENSE, 3, AD_ACT_LINEAR, 0 } };
    ad_layer_spec s3[] = {
        { AD_LAYER_FLATTEN, 0, 0, 0 }, { AD_LAYER_DENSE, 7, AD_ACT_RELU, 0 },
        { AD_LAYER_DENSE, 15, AD_ACT_SIGMOID, 0 } };

    python_rewrite("stacked", 12, 1, s1, 3, AD_SCALER_STANDARD);
    python_rewrite("repeat", 5, 3, s2, 4, AD_SCALER_MINMAX);
    python_rewrite("dense", 5, 3, s3, 3, AD_SCALER_NONE);
}

static void test_roundtrip_seed_lstm(void)
{
    ad_layer_spec l[] = {
        { AD_LAYER_LSTM, 64, AD_ACT_TANH, 1 }, { AD_LAYER_LSTM, 32, AD_ACT_TANH, 1 },
        { AD_LAYER_LSTM, 64, AD_ACT_TANH, 1 }, { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } };
    roundtrip("seed", 100, 1, l, 4, AD_SCALER_STANDARD);
}

static void test_roundtrip_repeat_vector(void)
{
    ad_layer_spec l[] = {
        { AD_LAYER_LSTM, 16, AD_ACT_TANH, 0 }, { AD_LAYER_REPEAT_VECTOR, 10, 0, 0 },
        { AD_LAYER_LSTM, 16, AD_ACT_RELU, 1 }, { AD_LAYER_TD_DENSE, 8, AD_ACT_LINEAR, 0 } };
    roundtrip("repeat", 10, 8, l, 4, AD_SCALER_MINMAX);
}

static void test_roundtrip_dense(void)
{
    ad_layer_spec l[] = {
        { AD_LAYER_FLATTEN, 0, 0, 0 }, { AD_LAYER_DENSE, 32, AD_ACT_RELU, 0 },
        { AD_LAYER_DENSE, 8, AD_ACT_TANH, 0 }, { AD_LAYER_DENSE, 80, AD_ACT_SIGMOID, 0 } };
    roundtrip("dense", 10, 8, l, 4, AD_SCALER_NONE);
}

static void test_save_atomic(void)
{
    ad_layer_spec l[] = { { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 } };
    ad_model *m = make_model(3, 2, l, 1, AD_SCALER_STANDARD);
    char path[320], err[512] = "";
    DIR *d;
    struct dirent *de;
    int leftovers = 0, rc;

    if (m == NULL)
        return;
    snprintf(path, sizeof(path), "%s/atomic.safetensors", tmpdir);
    T_CHECK(ad_model_save(m, path, err, sizeof(err)) == 0, "%s", err);
    m->params[0] = 42.0f;
    T_CHECK(ad_model_save(m, path, err, sizeof(err)) == 0, "overwrite: %s", err);
    d = opendir(tmpdir);
    while (d && (de = readdir(d)) != NULL)
        if (strstr(de->d_name, AD_TMP_MARK))
            leftovers++;
    if (d)
        closedir(d);
    T_CHECK(leftovers == 0, "%d temporary files left", leftovers);
    /* a NaN weight is refused at save time: such a file would not load */
    m->params[1] = NAN;
    rc = ad_model_save(m, path, err, sizeof(err));
    T_CHECK(rc == AD_ENONFINITE && strstr(err, path), "NaN save rc=%d %s", rc, err);
    {
        ad_model *b = NULL;
        rc = ad_model_load(&b, path, err, sizeof(err));
        T_CHECK(rc == 0 && b && b->params[0] == 42.0f, "previous file intact rc=%d", rc);
        ad_model_free(b);
    }
    {   /* a name that is not UTF-8 would give a file nobody can read */
        const char *latin1[2] = { "temp\xe9rature", "y" };
        void *buf = NULL;
        size_t len = 0;
        T_CHECK(ad_model_set_features(m, latin1, 2) == 0, "set latin1 names");
        m->params[1] = 0;
        rc = ad_model_serialize(m, &buf, &len);
        T_CHECK(rc == AD_EINVAL && buf == NULL, "non-UTF-8 feature name: rc=%d", rc);
        free(buf);
    }
    snprintf(path, sizeof(path), "%s/no/such/dir/x.safetensors", tmpdir);
    m->params[1] = 0;
    rc = ad_model_save(m, path, err, sizeof(err));
    T_CHECK(rc < 0 && strstr(err, "no/such/dir"), "save to missing dir rc=%d %s", rc, err);
    ad_model_free(m);
    m = (ad_model *)1;
    rc = ad_model_load(&m, "/nonexistent/m.safetensors", err, sizeof(err));
    T_CHECK(rc == AD_ENOENT && m == NULL && strstr(err, "/nonexistent/m.safetensors"),
            "missing file rc=%d %s", rc, err);
}

/* ------------------------------------------------------------------------ */
/* hostile containers: hand-made bytes                                      */

/* 8-byte length (hlen_override if != 0) + header + dlen data bytes (value 0). */
static unsigned char *raw_file(const char *hdr, size_t dlen, uint64_t hlen_override,
                               size_t *len)
{
    size_t hl = strlen(hdr);
    unsigned char *p = calloc(1, 8 + hl + dlen + 1);
    uint64_t h = hlen_override ? hlen_override : hl;
    int i;

    for (i = 0; i < 8; i++)
        p[i] = (unsigned char)(h >> (8 * i));
    memcpy(p + 8, hdr, hl);
    *len = 8 + hl + dlen;
    return p;
}

typedef struct {
    const char *what;
    const char *hdr;
    size_t dlen;
    uint64_t hlen;
    const char *kw1, *kw2;
} raw_case;

static void test_hostile_containers(void)
{
    static const raw_case cases[] = {
        { "header length > file", "{}", 0, 1000, "header length 1000", "larger than the file" },
        { "header length 2^63", "{}", 0, 1ull << 63, "header length 9223372036854775808", "maximum" },
        { "header not JSON", "{\"a\":", 0, 0, "not valid JSON", "" },
        { "header JSON array", "[1,2]", 0, 0, "JSON object", "" },
        { "header trailing garbage", "{} x", 0, 0, "not valid JSON", "" },
        { "missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "tensor w", "missing dtype" },
        { "dtype F16", "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0, "tensor w", "dtype F16" },
        { "dtype not string", "{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "tensor w", "dtype" },
        { "shape negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, 0, "tensor w", "non-negative" },
        { "shape fraction", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, 0, "tensor w", "shape[0]" },
        { "shape not array", "{\"w\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, 0, "tensor w", "shape" },
        { "shape overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}",
          4, 0, "tensor w", "overflow" },
        { "shape 9 dims", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
          4, 0, "tensor w", "dimensions" },
        { "offsets out of range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, 0, "tensor w", "out of range" },
        { "offsets begin > end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, 0, "tensor w", "begin > end" },
        { "offsets wrong size", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0, "tensor w", "needs 8" },
        { "offsets one element", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, 0, "tensor w", "data_offsets" },
        { "offsets huge", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551615,18446744073709551619]}}",
          4, 0, "tensor w", "data_offsets" },
        { "overlapping tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, "overlap", "tensor b" },
        { "gap in data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, 0, "gap", "4..8" },
        { "trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, 0, "gap", "4..8" },
        { "duplicate tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, "tensor a", "twice" },
        { "metadata value number", "{\"__metadata__\":{\"window\":10}}", 0, 0, "\"window\"", "string" },
        { "metadata not object", "{\"__metadata__\":[\"x\"]}", 0, 0, "__metadata__", "object" },
        { "entry not object", "{\"w\":[1,2]}", 0, 0, "tensor w", "object" },
        { "empty header", "", 0, 0, "too short", "" },
        { "header not UTF-8", "{\"__metadata__\":{\"k\":\"\xc3\x28\"}}", 0, 0, "UTF-8", "byte 22" },
        { "header UTF-8 surrogate", "{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}", 0, 0, "UTF-8", "" },
        { "header overlong UTF-8", "{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0, 0, "UTF-8", "" },
    };
    size_t i, len;
    char err[512];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const raw_case *c = &cases[i];
        unsigned char *p = raw_file(c->hdr, c->dlen, c->hlen, &len);
        ad_st *st = (ad_st *)1;
        ad_model *m = (ad_model *)1;
        int rc;

        err[0] = '\0';
        rc = ad_st_parse(&st, p, len, "bad.safetensors", err, sizeof(err));
        T_CHECK(rc == AD_EFORMAT && st == NULL, "%s: st rc=%d", c->what, rc);
        T_CHECK(strstr(err, "bad.safetensors") && strstr(err, c->kw1) && strstr(err, c->kw2),
                "%s: message \"%s\" lacks \"%s\"/\"%s\"", c->what, err, c->kw1, c->kw2);
        rc = ad_model_load_mem(&m, p, len, "bad.safetensors", err, sizeof(err));
        T_CHECK(rc == AD_EFORMAT && m == NULL, "%s: model rc=%d", c->what, rc);
        T_NOTE("%-24s -> %s", c->what, err);
        free(p);
    }
    {   /* shorter than the length field; NUL inside the header */
        static const char nul_hdr[] = "{\"__metadata__\":{\"a\":\"b\0c\"}}";
        unsigned char p[64];
        ad_st *st = NULL;
        int rc;

        memset(p, 0, sizeof(p));
        rc = ad_st_parse(&st, p, 5, "short", err, sizeof(err));
        T_CHECK(rc == AD_EFORMAT && strstr(err, "short: file is 5 bytes"), "short: %s", err);
        p[0] = sizeof(nul_hdr) - 1;
        memcpy(p + 8, nul_hdr, sizeof(nul_hdr) - 1);
        rc = ad_st_parse(&st, p, 8 + sizeof(nul_hdr) - 1, "nul", err, sizeof(err));
        T_CHECK(rc == AD_EFORMAT && strstr(err, "NUL"), "nul: %s", err);
    }
    {   /* a valid container: accessors; unaligned data pointers allowed */
        size_t n;
        unsigned char *p = raw_file("{\"__metadata__\":{\"k\":\"v\"},\"b\":{\"dtype\":\"F32\",\"shape\":[1,2],"
                                    "\"data_offsets\":[4,12]},\"a\":{\"dtype\":\"F32\",\"shape\":[],"
                                    "\"data_offsets\":[0,4]},\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],"
                                    "\"data_offsets\":[12,12]}}", 12, 0, &n);
        ad_st *st = NULL;
        int rc = ad_st_parse(&st, p, n, "ok", err, sizeof(err));
        const ad_st_tensor *b;

        T_CHECK(rc == 0 && st, "valid container rc=%d %s", rc, err);
        if (st) {
            b = ad_st_find(st, "b");
            T_CHECK(ad_st_count(st) == 3 && b && b->count == 2 && b->ndim == 2 &&
                    b->shape[1] == 2 && ad_st_find(st, "a")->count == 1 &&
                    ad_st_find(st, "z")->count == 0 && ad_st_find(st, "q") == NULL,
                    "tensors");
            T_CHECK(ad_st_meta_count(st) == 1 && strcmp(ad_st_meta(st, "k"), "v") == 0 &&
                    strcmp(ad_st_meta_key(st, 0), "k") == 0 && ad_st_meta(st, "x") == NULL,
                    "metadata");
            T_CHECK(ad_st_at(st, 0) && strcmp(ad_st_at(st, 0)->name, "b") == 0 &&
                    ad_st_at(st, 3) == NULL, "header order");
        }
        ad_st_free(st);
        free(p);
    }
}

/* ------------------------------------------------------------------------ */
/* broken models: valid containers whose content is wrong                   */

/* tiny model: T=4 F=2, lstm(3,seq) -> td_dense(2) */
static const char *base_meta[][2] = {
    { "format", "anomalyd-model" },
    { "format_version", "1" },
    { "window", "4" },
    { "features", "[\"a\",\"b\"]" },
    { "architecture", "[{\"type\":\"lstm\",\"units\":3,\"activation\":\"tanh\",\"return_sequences\":true},"
                      "{\"type\":\"time_distributed_dense\",\"units\":2,\"activation\":\"linear\"}]" },
    { "scaler", "{\"type\":\"standard\",\"mean\":[0,1],\"std\":[1,2]}" },
    { "provenance", "{\"by\":\"test\"}" },
};
static const struct { const char *name; int ndim; int64_t shape[2]; } base_t[] = {
    { "layers.0.kernel", 2, { 2, 12 } },
    { "layers.0.recurrent_kernel", 2, { 3, 12 } },
    { "layers.0.bias", 1, { 12 } },
    { "layers.1.kernel", 2, { 3, 2 } },
    { "layers.1.bias", 1, { 2 } },
};

typedef struct {
    const char *what;
    const char *meta_key, *meta_val;   /* set (or add) this key */
    const char *drop_meta;
    const char *drop_tensor;
    const char *extra_tensor;
    const char *reshape;               /* tensor given shape r0 x r1 */
    int64_t r0, r1;
    float poison;                      /* != 0: layers.0.recurrent_kernel[5] */
    int code;
    const char *kw1, *kw2;
} model_case;

static int build_variant(const model_case *c, void **buf, size_t *len)
{
    ad_st_writer *w = ad_st_writer_new();
    float data[256];
    size_t k;
    int rc = 0, found = 0;

    for (k = 0; k < 256; k++)
        data[k] = frand() * 0.5f;
    for (k = 0; k < sizeof(base_meta) / sizeof(base_meta[0]); k++) {
        const char *key = base_meta[k][0], *val = base_meta[k][1];
        if (c && c->drop_meta && strcmp(c->drop_meta, key) == 0)
            continue;
        if (c && c->meta_key && strcmp(c->meta_key, key) == 0) {
            val = c->meta_val;
            found = 1;
        }
        rc |= ad_st_writer_meta(w, key, val);
    }
    if (c && c->meta_key && !found)
        rc |= ad_st_writer_meta(w, c->meta_key, c->meta_val);
    for (k = 0; k < sizeof(base_t) / sizeof(base_t[0]); k++) {
        int64_t sh[2] = { base_t[k].shape[0], base_t[k].shape[1] };
        int nd = base_t[k].ndim;
        float saved = data[5];
        if (c && c->drop_tensor && strcmp(c->drop_tensor, base_t[k].name) == 0)
            continue;
        if (c && c->reshape && strcmp(c->reshape, base_t[k].name) == 0) {
            nd = c->r1 ? 2 : 1;
            sh[0] = c->r0;
            sh[1] = c->r1;
        }
        if (c && c->poison != 0 && strcmp(base_t[k].name, "layers.0.recurrent_kernel") == 0)
            data[5] = c->poison;
        rc |= ad_st_writer_add(w, base_t[k].name, data, nd, sh);
        data[5] = saved;
    }
    if (c && c->extra_tensor) {
        int64_t one = 1;
        rc |= ad_st_writer_add(w, c->extra_tensor, data, 1, &one);
    }
    rc |= ad_st_writer_finish(w, buf, len);
    ad_st_writer_free(w);
    return rc;
}

static void test_broken_models(void)
{
    static const model_case cases[] = {
        { "missing tensor", NULL, NULL, NULL, "layers.1.bias", NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "tensor layers.1.bias missing", "[2]" },
        { "extra tensor", NULL, NULL, NULL, NULL, "layers.7.kernel", NULL, 0, 0, 0,
          AD_EFORMAT, "unexpected tensor layers.7.kernel", "" },
        { "wrong shape", NULL, NULL, NULL, NULL, NULL, "layers.0.kernel", 12, 2, 0,
          AD_ESHAPE, "tensor layers.0.kernel: shape [12,2], expected [2,12]", "" },
        { "wrong rank", NULL, NULL, NULL, NULL, NULL, "layers.1.bias", 1, 2, 0,
          AD_ESHAPE, "tensor layers.1.bias: shape [1,2], expected [2]", "" },
        { "NaN weight", NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NAN,
          AD_ENONFINITE, "tensor layers.0.recurrent_kernel[5]", "NaN" },
        { "Inf weight", NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, INFINITY,
          AD_ENONFINITE, "tensor layers.0.recurrent_kernel[5]", "Inf" },
        { "missing format", NULL, NULL, "format", NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "metadata key \"format\" missing", "" },
        { "missing window", NULL, NULL, "window", NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "metadata key \"window\" missing", "" },
        { "missing architecture", NULL, NULL, "architecture", NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "metadata key \"architecture\" missing", "" },
        { "missing scaler", NULL, NULL, "scaler", NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "metadata key \"scaler\" missing", "" },
        { "wrong format", "format", "gguf", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"format\": \"gguf\"", "anomalyd-model" },
        { "format_version 2", "format_version", "2", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"format_version\": \"2\"", "reads format_version \"1\"" },
        { "window not integer", "window", "4.0", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"window\": \"4.0\"", "integer" },
        { "window 0", "window", "0", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"window\"", "1..1000000" },
        { "unknown layer type", "architecture", "[{\"type\":\"gru\",\"units\":3}]", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EARCH, "architecture[0].type: unknown layer type \"gru\"", "" },
        { "units 0", "architecture", "[{\"type\":\"lstm\",\"units\":3,\"return_sequences\":true},"
          "{\"type\":\"time_distributed_dense\",\"units\":0}]", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EARCH, "architecture[1].units: expected an integer 1..65536", "" },
        { "features != output F", "features", "[\"a\",\"b\",\"c\"]", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EARCH, "final output is a sequence (4,2)", "features: 3" },
        { "duplicate feature", "features", "[\"a\",\"a\"]", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"features\"[1]: duplicate feature name \"a\"", "" },
        { "empty feature", "features", "[\"a\",\"\"]", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"features\"[1]", "non-empty" },
        { "features not array", "features", "\"a,b\"", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"features\"", "array" },
        { "scaler std 0", "scaler", "{\"type\":\"standard\",\"mean\":[0,0],\"std\":[1,0]}", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_ERANGE, "\"scaler\".std[1]", "> 0" },
        { "scaler std negative", "scaler", "{\"type\":\"standard\",\"mean\":[0,0],\"std\":[-1,1]}", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_ERANGE, "\"scaler\".std[0]", "> 0" },
        { "scaler max <= min", "scaler", "{\"type\":\"minmax\",\"min\":[0,5],\"max\":[1,5]}", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_ERANGE, "max[1]", "greater than min[1]" },
        { "scaler wrong length", "scaler", "{\"type\":\"standard\",\"mean\":[0],\"std\":[1]}", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"scaler\".mean: 1 values, expected 2", "" },
        { "scaler huge value", "scaler", "{\"type\":\"standard\",\"mean\":[1e300,0],\"std\":[1,1]}", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_ENONFINITE, "\"scaler\".mean[0]", "finite" },
        { "scaler unknown type", "scaler", "{\"type\":\"robust\"}", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"scaler\".type: \"robust\"", "" },
        { "provenance not object", "provenance", "hello", NULL, NULL, NULL, NULL, 0, 0, 0,
          AD_EFORMAT, "\"provenance\"", "JSON object" },
    };
    void *buf = NULL;
    size_t len = 0, i;
    char err[512];
    ad_model *m = NULL;
    int rc;

    /* the base file itself loads; unknown metadata keys are ignored */
    {
        model_case extra = { "unknown key", "comment", "hello", NULL, NULL, NULL, NULL, 0, 0, 0, 0, "", "" };
        T_CHECK(build_variant(&extra, &buf, &len) == 0, "build base");
        rc = ad_model_load_mem(&m, buf, len, "base.safetensors", err, sizeof(err));
        T_CHECK(rc == 0 && m && m->window == 4 && m->n_features == 2 &&
                strcmp(m->features[1], "b") == 0 && m->scaler == AD_SCALER_STANDARD &&
                m->scale_b[1] == 2.0f && m->provenance && m->training == NULL,
                "base model rc=%d %s", rc, err);
        ad_model_free(m);
        free(buf);
    }
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const model_case *c = &cases[i];
        buf = NULL;
        m = (ad_model *)1;
        err[0] = '\0';
        T_CHECK(build_variant(c, &buf, &len) == 0, "%s: build", c->what);
        rc = ad_model_load_mem(&m, buf, len, "m.safetensors", err, sizeof(err));
        T_CHECK(rc == c->code && m == NULL, "%s: rc=%d (%s), want %d", c->what, rc, err, c->code);
        T_CHECK(strncmp(err, "m.safetensors: ", 15) == 0 && strstr(err, c->kw1) &&
                strstr(err, c->kw2), "%s: message \"%s\" lacks \"%s\"/\"%s\"",
                c->what, err, c->kw1, c->kw2);
        T_NOTE("%-22s -> %s", c->what, err);
        free(buf);
    }
}

/* Every prefix of a valid file fails cleanly; single-byte corruptions either
 * load or fail with a message, and never crash (ASan in `make check`). */
static void test_truncation_and_corruption(void)
{
    static const unsigned char vals[] = { 0x00, 0xff, '"', '9', ',', ']', '}' };
    void *buf = NULL;
    size_t len = 0, n, v;
    unsigned char *cp;
    char err[512];
    int bad_prefix = 0, loaded = 0, failed = 0, silent = 0;

    T_CHECK(build_variant(NULL, &buf, &len) == 0, "build");
    for (n = 0; n < len; n++) {
        ad_model *m = NULL;
        /* a fresh allocation of exactly n bytes, so ASan sees any overread */
        cp = malloc(n ? n : 1);
        memcpy(cp, buf, n);
        err[0] = '\0';
        if (ad_model_load_mem(&m, cp, n, "cut", err, sizeof(err)) >= 0 || m != NULL ||
            strncmp(err, "cut: ", 5) != 0)
            bad_prefix++;
        ad_model_free(m);
        free(cp);
    }
    T_CHECK(bad_prefix == 0, "%d of %zu prefixes did not fail cleanly", bad_prefix, len);
    cp = malloc(len);
    for (n = 0; n < len; n++) {
        for (v = 0; v < sizeof(vals); v++) {
            ad_model *m = NULL;
            int rc;
            memcpy(cp, buf, len);
            if (cp[n] == vals[v])
                continue;
            cp[n] = vals[v];
            err[0] = '\0';
            rc = ad_model_load_mem(&m, cp, len, "flip", err, sizeof(err));
            if (rc == 0) {
                loaded++;
                T_CHECK(m != NULL, "rc 0 without a model");
            } else {
                failed++;
                if (m != NULL || strncmp(err, "flip: ", 6) != 0)
                    silent++;
            }
            ad_model_free(m);
        }
    }
    T_CHECK(silent == 0, "%d corruptions failed without a proper message", silent);
    T_NOTE("%zu prefixes refused; %d corrupted files loaded (data bytes), %d refused",
           len, loaded, failed);
    free(cp);
    free(buf);
}

static void test_scale(void)
{
    ad_layer_spec l[] = { { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 } };
    ad_model *m = NULL;
    char err[128];
    float a[2] = { 1.0f, -2.0f }, b[2] = { 2.0f, 4.0f };
    float raw[4] = { 3.0f, 2.0f, 1.0f, -2.0f }, out[4];

    T_CHECK(ad_model_create(&m, 2, 2, l, 1, err, sizeof(err)) == 0, "%s", err);
    if (m == NULL)
        return;
    ad_model_scale(m, raw, out, 2);
    T_CHECK(memcmp(raw, out, sizeof(out)) == 0, "none = copy");
    T_CHECK(ad_model_set_scaler(m, AD_SCALER_STANDARD, a, b) == 0, "standard");
    ad_model_scale(m, raw, out, 2);
    T_CHECK(out[0] == 1.0f && out[1] == 1.0f && out[2] == 0.0f && out[3] == 0.0f,
            "standard: %g %g %g %g", out[0], out[1], out[2], out[3]);
    T_CHECK(ad_model_set_scaler(m, AD_SCALER_MINMAX, a, b) == 0, "minmax");
    memcpy(out, raw, sizeof(out));
    ad_model_scale(m, out, out, 2);   /* in place */
    T_CHECK(out[0] == 2.0f && out[1] == 4.0f / 6.0f && out[2] == 0.0f && out[3] == 0.0f,
            "minmax: %g %g %g %g", out[0], out[1], out[2], out[3]);
    b[0] = 0.0f;
    T_CHECK(ad_model_set_scaler(m, AD_SCALER_STANDARD, a, b) < 0, "std 0 refused");
    T_CHECK(ad_model_set_scaler(m, AD_SCALER_MINMAX, a, b) < 0, "max < min refused");
    {
        const char *dup[2] = { "x", "x" }, *emp[2] = { "x", "" }, *ok[2] = { "x", "y" };
        T_CHECK(ad_model_set_features(m, dup, 2) == AD_EINVAL &&
                ad_model_set_features(m, emp, 2) == AD_EINVAL &&
                ad_model_set_features(m, ok, 1) == AD_EINVAL &&
                ad_model_set_features(m, ok, 2) == 0 && strcmp(m->features[1], "y") == 0,
                "feature name checks");
    }
    ad_model_free(m);
}

/* ad_model_rescale: a window scaled for one model, re-scaled for another
 * (standard -> minmax, minmax -> none), equals the raw window scaled for
 * the other directly (reference: ad_model_scale_d in double), within 1e-5
 * relative; NaN stays NaN. */
static void test_rescale(void)
{
    ad_layer_spec l[1] = { { AD_LAYER_TD_DENSE, 3, AD_ACT_LINEAR, 0 } };
    ad_model *ms = NULL, *mm = NULL, *mn = NULL;
    char err[200];
    float a1[3] = { 10, -5, 0.5f }, b1[3] = { 2, 0.5f, 3 };
    float a2[3] = { 0, -20, -1 }, b2[3] = { 40, 10, 4 };
    double raw[12];
    float s1[12], s2[12], viaf[12], n[12];
    double worst = 0;
    int i;

    T_CHECK(ad_model_create(&ms, 4, 3, l, 1, err, sizeof(err)) == 0 &&
            ad_model_create(&mm, 4, 3, l, 1, err, sizeof(err)) == 0 &&
            ad_model_create(&mn, 4, 3, l, 1, err, sizeof(err)) == 0, "%s", err);
    if (!ms || !mm || !mn)
        goto out;
    ad_model_set_scaler(ms, AD_SCALER_STANDARD, a1, b1);
    ad_model_set_scaler(mm, AD_SCALER_MINMAX, a2, b2);
    for (i = 0; i < 12; i++)
        raw[i] = 7.0 * sin(1.3 * i) + (i % 3) * 3.0;
    raw[5] = NAN;
    ad_model_scale_d(ms, raw, s1, 4);
    ad_model_scale_d(mm, raw, s2, 4);
    ad_model_rescale(ms, mm, s1, viaf, 4);
    for (i = 0; i < 12; i++) {
        if (i == 5)
            continue;
        double e = fabs((double)viaf[i] - (double)s2[i]) / (fabs((double)s2[i]) + 1e-3);
        if (e > worst) worst = e;
    }
    T_CHECK(worst < 1e-5 && isnan(viaf[5]), "standard -> minmax: worst relative error %.2g",
            worst);
    T_CHECK(!ad_model_same_scaler(ms, mm) && ad_model_same_scaler(ms, ms),
            "same_scaler tells the two apart");
    ad_model_rescale(mm, mn, s2, n, 4);        /* to "none": the raw values */
    worst = 0;
    for (i = 0; i < 12; i++)
        if (i != 5 && fabs(n[i] - raw[i]) / (fabs(raw[i]) + 1e-3) > worst)
            worst = fabs(n[i] - raw[i]) / (fabs(raw[i]) + 1e-3);
    T_CHECK(worst < 1e-5, "minmax -> none gives the raw values back: worst %.2g", worst);
out:
    ad_model_free(ms);
    ad_model_free(mm);
    ad_model_free(mn);
}

int main(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

    snprintf(tmpdir, sizeof(tmpdir), "%s/test_model_file.XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    T_RUN(test_sha256_vectors);
    T_RUN(test_rescale);
    T_RUN(test_sha256_vs_sha256sum);
    T_RUN(test_create_shapes);
    T_RUN(test_create_errors);
    T_RUN(test_arch_json);
    T_RUN(test_roundtrip_seed_lstm);
    T_RUN(test_roundtrip_repeat_vector);
    T_RUN(test_roundtrip_dense);
    T_RUN(test_save_atomic);
    T_RUN(test_python_writer_identical);
    T_RUN(test_hostile_containers);
    T_RUN(test_broken_models);
    T_RUN(test_truncation_and_corruption);
    T_RUN(test_scale);
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return t_done();
}
