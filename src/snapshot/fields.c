/*
 * State field tables: one description per device used for save, check and
 * load (DESIGN.md "One description per device, used for both directions"),
 * plus the typed JSON getters the other state codecs use.
 *
 * Encoding: U8/U16/U32/U64 as JSON integers (U64 above 2^53 as a decimal
 * string: JSON readers keep 53 bits exactly), BOOL as true/false, BYTES as
 * base64, count > 1 as a JSON array of count elements.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/base64.h"
#include "amber/device.h"
#include "amber/snapjson.h"

/* ---- JSON helpers ------------------------------------------------------ */

json_t *snap_json_u64(uint64_t v)
{
	char buf[24];

	if (v <= SNAP_JSON_EXACT_MAX)
		return json_integer((json_int_t)v);
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

int snap_json_to_u64(const json_t *v, uint64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < 0)
			return -EINVAL;
		*out = (uint64_t)i;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		uint64_t r = 0;

		if (!*s || json_string_length(v) != strlen(s) || strlen(s) > 20)
			return -EINVAL;
		for (; *s; s++) {
			if (*s < '0' || *s > '9')
				return -EINVAL;
			if (r > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
				return -EINVAL;
			r = r * 10 + (uint64_t)(*s - '0');
		}
		*out = r;
		return 0;
	}
	return -EINVAL;
}

static const char *snap_type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT:  return "an object";
	case JSON_ARRAY:   return "an array";
	case JSON_STRING:  return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL:    return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:   return "a boolean";
	case JSON_NULL:    return "null";
	}
	return "something else";
}

const char *snap_json_kind(const json_t *v)
{
	return snap_type_name(json_typeof(v));
}

int snap_json_expect(const json_t *v, json_type type, const char *name, char *err,
		     size_t errlen)
{
	if (type == JSON_TRUE || type == JSON_FALSE ? json_is_boolean(v)
						     : v && json_typeof(v) == type)
		return 0;
	snprintf(err, errlen, "%s: expected %s, got %s", name, snap_type_name(type),
		 v ? snap_json_kind(v) : "nothing");
	return -EINVAL;
}

void snap_path(char *buf, size_t len, const char *path, const char *key)
{
	if (path && *path)
		snprintf(buf, len, "%s.%s", path, key);
	else
		snprintf(buf, len, "%s", key);
}

static int snap_member(const json_t *obj, const char *path, const char *key, const json_t **out,
		       char *name, size_t namelen, char *err, size_t errlen)
{
	int ret;

	snap_path(name, namelen, path, key);
	ret = snap_json_expect(obj, JSON_OBJECT, path && *path ? path : "document", err, errlen);
	if (ret)
		return ret;
	*out = json_object_get(obj, key);
	if (!*out) {
		snprintf(err, errlen, "%s: missing", name);
		return -EINVAL;
	}
	return 0;
}

int snap_get_u64(const json_t *obj, const char *path, const char *key, uint64_t max,
		 uint64_t *out, char *err, size_t errlen)
{
	const json_t *v;
	char name[256];
	uint64_t x;
	int ret = snap_member(obj, path, key, &v, name, sizeof(name), err, errlen);

	if (ret)
		return ret;
	if (snap_json_to_u64(v, &x) < 0) {
		if (json_is_integer(v))
			snprintf(err, errlen, "%s = %" JSON_INTEGER_FORMAT " is negative", name,
				 json_integer_value(v));
		else if (json_is_string(v))
			snprintf(err, errlen, "%s: \"%.40s\" is not a decimal integer", name,
				 json_string_value(v));
		else
			snprintf(err, errlen, "%s: expected an integer, got %s", name,
				 snap_json_kind(v));
		return -EINVAL;
	}
	if (x > max) {
		snprintf(err, errlen, "%s = %" PRIu64 " exceeds %" PRIu64, name, x, max);
		return -EINVAL;
	}
	if (out)
		*out = x;
	return 0;
}

int snap_get_u32(const json_t *obj, const char *path, const char *key, uint32_t max,
		 uint32_t *out, char *err, size_t errlen)
{
	uint64_t v;
	int ret = snap_get_u64(obj, path, key, max, &v, err, errlen);

	if (!ret && out)
		*out = (uint32_t)v;
	return ret;
}

/* The member key of obj, which must be of JSON type type (JSON_TRUE: either boolean). */
static int snap_member_of(const json_t *obj, const char *path, const char *key, json_type type,
			  const json_t **out, char *err, size_t errlen)
{
	const json_t *v;
	char name[256];
	int ret = snap_member(obj, path, key, &v, name, sizeof(name), err, errlen);

	if (!ret)
		ret = snap_json_expect(v, type, name, err, errlen);
	if (!ret)
		*out = v;
	return ret;
}

int snap_get_bool(const json_t *obj, const char *path, const char *key, bool *out,
		  char *err, size_t errlen)
{
	const json_t *v;
	int ret = snap_member_of(obj, path, key, JSON_TRUE, &v, err, errlen);

	if (!ret && out)
		*out = json_is_true(v);
	return ret;
}

int snap_get_string(const json_t *obj, const char *path, const char *key, const char **out,
		    char *err, size_t errlen)
{
	const json_t *v;
	int ret = snap_member_of(obj, path, key, JSON_STRING, &v, err, errlen);

	if (!ret && out)
		*out = json_string_value(v);
	return ret;
}

int snap_get_object(const json_t *obj, const char *path, const char *key, const json_t **out,
		    char *err, size_t errlen)
{
	const json_t *v;
	int ret = snap_member_of(obj, path, key, JSON_OBJECT, &v, err, errlen);

	if (!ret && out)
		*out = v;
	return ret;
}

int snap_get_array(const json_t *obj, const char *path, const char *key, const json_t **out,
		   char *err, size_t errlen)
{
	const json_t *v;
	int ret = snap_member_of(obj, path, key, JSON_ARRAY, &v, err, errlen);

	if (!ret && out)
		*out = v;
	return ret;
}

/* Decode a base64 JSON string named name into dst (NULL: check only). */
static int snap_decode_bytes(const json_t *v, const char *name, void *dst, size_t len,
			     size_t *outlen, char *err, size_t errlen)
{
	size_t slen, n, cap;
	uint8_t *tmp;
	int ret;

	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s: expected a base64 string, got %s", name,
			 snap_json_kind(v));
		return -EINVAL;
	}
	slen = json_string_length(v);
	cap = base64_decoded_max(slen);
	tmp = malloc(cap ? cap : 1);
	if (!tmp)
		return -ENOMEM;
	ret = base64_decode(json_string_value(v), slen, tmp, cap, &n);
	if (ret) {
		snprintf(err, errlen, "%s: not valid base64", name);
		ret = -EINVAL;
		goto out;
	}
	if (outlen ? n > len : n != len) {
		snprintf(err, errlen, "%s: %zu bytes, expected %s%zu", name, n,
			 outlen ? "at most " : "", len);
		ret = -EINVAL;
		goto out;
	}
	if (dst)
		memcpy(dst, tmp, n);
	if (outlen)
		*outlen = n;
out:
	free(tmp);
	return ret;
}

int snap_get_bytes(const json_t *obj, const char *path, const char *key, void *dst,
		   size_t len, size_t *outlen, char *err, size_t errlen)
{
	const json_t *v;
	char name[256];
	int ret = snap_member(obj, path, key, &v, name, sizeof(name), err, errlen);

	if (ret)
		return ret;
	return snap_decode_bytes(v, name, dst, len, outlen, err, errlen);
}

int snap_set_bytes(json_t *obj, const char *key, const void *src, size_t len)
{
	char *s = base64_encode_alloc(src, len);
	json_t *v;

	if (!s)
		return -ENOMEM;
	v = json_string(s);
	free(s);
	if (!v || json_object_set_new(obj, key, v) < 0)
		return -ENOMEM;
	return 0;
}

void snap_path_index(char *buf, size_t len, const char *path, size_t i)
{
	snprintf(buf, len, "%s[%zu]", path ? path : "", i);
}

int snap_set_u64(json_t *obj, const char *key, uint64_t v)
{
	json_t *j = snap_json_u64(v);

	if (!j || json_object_set_new(obj, key, j) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- field tables ------------------------------------------------------ */

static size_t field_elem_size(enum state_type t)
{
	switch (t) {
	case ST_U8:
	case ST_BOOL:
	case ST_BYTES:
		return 1;
	case ST_U16:
		return 2;
	case ST_U32:
		return 4;
	case ST_U64:
		return 8;
	case ST_END:
		break;
	}
	return 0;
}

static uint64_t field_type_max(enum state_type t)
{
	switch (t) {
	case ST_U8:  return UINT8_MAX;
	case ST_U16: return UINT16_MAX;
	case ST_U32: return UINT32_MAX;
	case ST_BOOL: return 1;
	default:     return UINT64_MAX;
	}
}

static uint64_t field_max(const struct state_field *f)
{
	uint64_t tmax = field_type_max(f->type);

	return f->max && f->max < tmax ? f->max : tmax;
}

static uint64_t field_read(const struct state_field *f, const void *base, uint32_t i)
{
	const uint8_t *p = (const uint8_t *)base + f->offset + (size_t)i * field_elem_size(f->type);
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (f->type) {
	case ST_U8:
	case ST_BOOL:	/* read as a byte: a bool holding 2 must not be UB here */
		memcpy(&u8, p, 1);
		return f->type == ST_BOOL ? u8 != 0 : u8;
	case ST_U16:
		memcpy(&u16, p, 2);
		return u16;
	case ST_U32:
		memcpy(&u32, p, 4);
		return u32;
	case ST_U64:
		memcpy(&u64, p, 8);
		return u64;
	default:
		return 0;
	}
}

static void field_write(const struct state_field *f, void *base, uint32_t i, uint64_t v)
{
	uint8_t *p = (uint8_t *)base + f->offset + (size_t)i * field_elem_size(f->type);
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;

	switch (f->type) {
	case ST_U8:
	case ST_BOOL:
		memcpy(p, &u8, 1);
		break;
	case ST_U16:
		memcpy(p, &u16, 2);
		break;
	case ST_U32:
		memcpy(p, &u32, 4);
		break;
	case ST_U64:
		memcpy(p, &v, 8);
		break;
	default:
		break;
	}
}

static bool field_is_array(const struct state_field *f)
{
	return f->type != ST_BYTES && f->count > 1;
}

static json_t *field_elem_json(const struct state_field *f, const void *base, uint32_t i)
{
	uint64_t v = field_read(f, base, i);

	if (f->type == ST_BOOL)
		return json_boolean(v);
	return snap_json_u64(v);
}

int state_fields_save(const struct state_field *f, const void *base, json_t *obj)
{
	for (; f->type != ST_END; f++) {
		json_t *v;

		if (f->type == ST_BYTES) {
			if (snap_set_bytes(obj, f->name, (const uint8_t *)base + f->offset,
					   f->count) < 0)
				return -ENOMEM;
			continue;
		}
		if (field_is_array(f)) {
			v = json_array();
			if (!v)
				return -ENOMEM;
			for (uint32_t i = 0; i < f->count; i++)
				if (json_array_append_new(v, field_elem_json(f, base, i)) < 0) {
					json_decref(v);
					return -ENOMEM;
				}
		} else {
			v = field_elem_json(f, base, 0);
		}
		if (!v || json_object_set_new(obj, f->name, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* How a field is named in messages: `field "lsr[3]"` or `path.lsr[3]`. */
static void field_label(char *buf, size_t len, const char *path, const char *name, int idx)
{
	char elem[16] = "";

	if (idx >= 0)
		snprintf(elem, sizeof(elem), "[%d]", idx);
	if (!path)
		snprintf(buf, len, "field \"%s%s\"", name, elem);
	else if (*path)
		snprintf(buf, len, "%s.%s%s", path, name, elem);
	else
		snprintf(buf, len, "%s%s", name, elem);
}

/* Check one element; on success *out gets its value. */
static int field_check_elem(const struct state_field *f, const json_t *v, const char *path,
			    int idx, uint64_t *out, char *err, size_t errlen)
{
	char label[192];
	uint64_t x;

	field_label(label, sizeof(label), path, f->name, idx);
	if (f->type == ST_BOOL) {
		int ret = snap_json_expect(v, JSON_TRUE, label, err, errlen);

		if (ret)
			return ret;
		*out = json_is_true(v);
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) < 0) {
		snprintf(err, errlen, "%s = %" JSON_INTEGER_FORMAT " is negative", label,
			 json_integer_value(v));
		return -EINVAL;
	}
	/* Only U64 fields may be strings: the others always fit a JSON number. */
	if (!json_is_integer(v) && !(f->type == ST_U64 && json_is_string(v))) {
		snprintf(err, errlen, "%s: expected an integer, got %s", label, snap_json_kind(v));
		return -EINVAL;
	}
	if (snap_json_to_u64(v, &x) < 0) {
		snprintf(err, errlen, "%s: \"%.40s\" is not a decimal integer", label,
			 json_string_value(v));
		return -EINVAL;
	}
	if (x > field_max(f)) {
		snprintf(err, errlen, "%s = %" PRIu64 " exceeds %" PRIu64, label, x, field_max(f));
		return -EINVAL;
	}
	*out = x;
	return 0;
}

/*
 * The one walk behind check and load: base == NULL checks only.
 */
static int fields_walk(const struct state_field *f, void *base, const json_t *obj,
		       uint32_t version, const char *path, char *err, size_t errlen)
{
	char label[192];
	uint64_t x;
	int ret;

	ret = snap_json_expect(obj, JSON_OBJECT, path && *path ? path : "state", err, errlen);
	if (ret)
		return ret;
	for (; f->type != ST_END; f++) {
		const json_t *v;

		/* A section of an older version lacks newer fields: they keep their value. */
		if (f->since > version)
			continue;
		v = json_object_get(obj, f->name);
		field_label(label, sizeof(label), path, f->name, -1);
		if (!v) {
			snprintf(err, errlen, "%s: missing", label);
			return -EINVAL;
		}
		if (f->type == ST_BYTES) {
			ret = snap_decode_bytes(v, label, base ? (uint8_t *)base + f->offset : NULL,
						f->count, NULL, err, errlen);
			if (ret)
				return ret;
			continue;
		}
		if (field_is_array(f)) {
			if (!json_is_array(v)) {
				snprintf(err, errlen, "%s: expected an array of %u, got %s", label,
					 f->count, snap_json_kind(v));
				return -EINVAL;
			}
			if (json_array_size(v) != f->count) {
				snprintf(err, errlen, "%s: %zu elements, expected %u", label,
					 json_array_size(v), f->count);
				return -EINVAL;
			}
			for (uint32_t i = 0; i < f->count; i++) {
				ret = field_check_elem(f, json_array_get(v, i), path, (int)i, &x,
						       err, errlen);
				if (ret)
					return ret;
				if (base)
					field_write(f, base, i, x);
			}
			continue;
		}
		ret = field_check_elem(f, v, path, -1, &x, err, errlen);
		if (ret)
			return ret;
		if (base)
			field_write(f, base, 0, x);
	}
	return 0;
}

int state_fields_check(const struct state_field *f, const json_t *obj, uint32_t version,
		       char *err, size_t errlen)
{
	return fields_walk(f, NULL, obj, version, NULL, err, errlen);
}

int state_fields_check_path(const struct state_field *f, const json_t *obj, uint32_t version,
			    const char *path, char *err, size_t errlen)
{
	return fields_walk(f, NULL, obj, version, path ? path : "", err, errlen);
}

int state_fields_load(const struct state_field *f, void *base, const json_t *obj, uint32_t version)
{
	char err[256];
	int ret;

	/* Check the whole section first so a bad one changes nothing. */
	ret = fields_walk(f, NULL, obj, version, NULL, err, sizeof(err));
	if (ret)
		return ret;
	return fields_walk(f, base, obj, version, NULL, err, sizeof(err));
}
