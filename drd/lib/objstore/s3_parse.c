/*
 * s3:// driver: the parsers of what comes from outside (s3_parse.h): S3's XML answers, on
 * libxml2 with no network, no entities and no DTD, and the AWS credentials file.
 * Must never trust a length, count or nesting an answer claims, and never put a credential (or a
 * line of the credentials file) into a message.
 */
#include "drd/lib/objstore/s3_parse.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- XML ---- */

static xmlDocPtr xml_parse(const char *xml, size_t len)
{
    if (!len || len > INT32_MAX)
        return NULL;
    /* no network, no entity substitution, no DTD loading: answers are data, nothing more */
    return xmlReadMemory(xml, (int)len, "s3.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static int name_is(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static xmlNodePtr find_elem(xmlNodePtr n, const char *name)
{
    for (; n; n = n->next) {
        if (name_is(n, name))
            return n;
        xmlNodePtr c = find_elem(n->children, name);
        if (c)
            return c;
    }
    return NULL;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (name_is(c, name))
            return c;
    return NULL;
}

/* text of child `name` of n into out; "" when missing */
static void child_text(xmlNodePtr n, const char *name, char *out, size_t cap)
{
    xmlNodePtr c = child(n, name);
    xmlChar *t = c ? xmlNodeGetContent(c) : NULL;
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    xmlFree(t);
}

/* text of child `name` as a new string ("" when missing); NULL when out of memory */
static char *child_dup(xmlNodePtr n, const char *name)
{
    xmlNodePtr c = child(n, name);
    xmlChar *t = c ? xmlNodeGetContent(c) : NULL;
    char *r = strdup(t ? (const char *)t : "");
    xmlFree(t);
    return r;
}

/* whether a listing page says more pages follow */
static int is_truncated(xmlNodePtr root)
{
    char trunc[16];
    child_text(root, "IsTruncated", trunc, sizeof trunc);
    return strcmp(trunc, "true") == 0;
}

int s3_xml_text(const char *xml, size_t len, const char *name, char *out, size_t cap)
{
    int rc = -1;
    xmlDocPtr doc = xml_parse(xml, len);
    xmlNodePtr n = doc ? find_elem(xmlDocGetRootElement(doc), name) : NULL;
    out[0] = 0;
    if (n) {
        xmlChar *t = xmlNodeGetContent(n);
        snprintf(out, cap, "%s", t ? (const char *)t : "");
        xmlFree(t);
        rc = 0;
    }
    xmlFreeDoc(doc);
    return rc;
}

int s3_xml_root_is(const char *xml, size_t len, const char *name)
{
    xmlDocPtr doc = xml_parse(xml, len);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    int is = root && name_is(root, name);
    xmlFreeDoc(doc);
    return is;
}

int64_t s3_parse_iso_ms(const char *t)
{
    struct tm tm = {0};
    int y, mo, d, h, mi;
    double sec = 0;
    /* fields out of range are refused before any arithmetic: the seconds of a hostile answer
     * ("1e300") must not reach an int conversion (fuzz_s3_error) */
    if (sscanf(t, "%d-%d-%dT%d:%d:%lf", &y, &mo, &d, &h, &mi, &sec) != 6 || y < 1970 || y > 9999 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        !(sec >= 0 && sec < 61))
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = (int)sec;
    int ms = (int)((sec - tm.tm_sec) * 1000 + 0.5);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

int s3_list_parse(const char *xml, size_t len, const char *what, const char *prefix,
                  dr_store_list_cb cb, void *ctx, char **next_token)
{
    int rc = 0;
    char *token = NULL;
    size_t pl = strlen(prefix);
    xmlDocPtr doc = xml_parse(xml, len);
    *next_token = NULL;
    if (!doc)
        return dr_error_set(DR_EPROTO, "cannot list '%s': unreadable answer", what);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    for (xmlNodePtr c = root ? root->children : NULL; c && rc == 0; c = c->next) {
        if (!name_is(c, "Contents"))
            continue;
        char size[32], mt[64];
        char *key = child_dup(c, "Key");
        if (!key) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            break;
        }
        child_text(c, "Size", size, sizeof size);
        child_text(c, "LastModified", mt, sizeof mt);
        if (strlen(key) > pl && !strncmp(key, prefix, pl)) {
            dr_store_obj o = {key + pl, strtoull(size, NULL, 10), s3_parse_iso_ms(mt)};
            rc = cb(ctx, &o);
        }
        free(key);
    }
    if (rc != 0 || !is_truncated(root))
        goto out;
    if (!(token = child_dup(root, "NextContinuationToken"))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if (!*token) {
        rc = dr_error_set(DR_EPROTO,
                          "cannot list '%s': truncated answer without a continuation token", what);
        goto out;
    }
    *next_token = token;
    token = NULL;
out:
    free(token);
    xmlFreeDoc(doc);
    return rc;
}

int s3_uploads_parse(const char *xml, size_t len, const char *what, s3_upload_cb cb, void *ctx,
                     char **key_marker, char **id_marker)
{
    int rc = 0;
    char *kmark = NULL, *umark = NULL;
    xmlDocPtr doc = xml_parse(xml, len);
    *key_marker = *id_marker = NULL;
    if (!doc)
        return dr_error_set(DR_EPROTO, "cannot list uploads of '%s': unreadable answer", what);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    for (xmlNodePtr c = root ? root->children : NULL; c && rc == 0; c = c->next) {
        if (!name_is(c, "Upload"))
            continue;
        char init[64];
        child_text(c, "Initiated", init, sizeof init);
        char *key = child_dup(c, "Key"), *id = child_dup(c, "UploadId");
        if (!key || !id)
            rc = dr_error_set(DR_ENOMEM, "out of memory");
        else
            rc = cb(ctx, key, id, s3_parse_iso_ms(init), init);
        free(key);
        free(id);
    }
    if (rc != 0 || !is_truncated(root))
        goto out;
    kmark = child_dup(root, "NextKeyMarker");
    umark = child_dup(root, "NextUploadIdMarker");
    if (!kmark || !umark) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if (!*kmark && !*umark) {
        /* the same request again would get the same page: a loop without end */
        rc = dr_error_set(DR_EPROTO,
                          "cannot list uploads of '%s': truncated answer without markers", what);
        goto out;
    }
    *key_marker = kmark;
    *id_marker = umark;
    kmark = umark = NULL;
out:
    free(kmark);
    free(umark);
    xmlFreeDoc(doc);
    return rc;
}

/* ---- the AWS credentials file ---- */

void s3_wipe_free(char *p)
{
    if (p) {
        dr_secure_zero(p, strlen(p));
        free(p);
    }
}

static char *trim(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    size_t l = strlen(p);
    while (l && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r' || p[l - 1] == '\n'))
        p[--l] = 0;
    return p;
}

int s3_creds_parse(char *text, const char *profile, char **id, char **secret, char **token)
{
    int rc = 0, in = 0;
    *id = *secret = *token = NULL;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *l = trim(line);
        if (*l == '#' || *l == ';' || !*l)
            continue;
        if (*l == '[') {
            char *e = strchr(l, ']');
            if (e)
                *e = 0;
            char *sec = trim(l + 1);
            if (!strncmp(sec, "profile ", 8))
                sec = trim(sec + 8);
            in = !strcmp(sec, profile);
            continue;
        }
        char *eq = strchr(l, '=');
        if (!in || !eq)
            continue;
        *eq = 0;
        char *k = trim(l), *v = trim(eq + 1);
        char **dst = !strcmp(k, "aws_access_key_id")       ? id
                     : !strcmp(k, "aws_secret_access_key") ? secret
                     : !strcmp(k, "aws_session_token")     ? token
                                                           : NULL;
        if (dst) {
            s3_wipe_free(*dst);
            if (!(*dst = strdup(v))) {
                rc = dr_error_set(DR_ENOMEM, "out of memory");
                goto out;
            }
        }
    }
out:
    if (rc < 0) {
        s3_wipe_free(*id);
        s3_wipe_free(*secret);
        s3_wipe_free(*token);
        *id = *secret = *token = NULL;
    }
    return rc;
}
