/*
 * JSON helpers shared by the state codecs (device field tables, vCPU and VM
 * state, the checkpoint document). Every reader names the place of an error
 * as a path: `vcpus[1].regs.rip: expected an integer, got a string`.
 *
 * Integers: JSON numbers when <= 2^53 (exact in every JSON reader, jq
 * included), decimal strings above, so a u64 never loses precision.
 */
#ifndef AMBER_SNAPJSON_H
#define AMBER_SNAPJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "amber/device.h"

#define SNAP_JSON_EXACT_MAX (1ULL << 53)

/* A new JSON value for v: integer up to 2^53, decimal string above. */
json_t *snap_json_u64(uint64_t v);
/* Read a u64 written by snap_json_u64 (integer >= 0 or decimal string). 0 or -EINVAL. */
int snap_json_to_u64(const json_t *v, uint64_t *out);
/* "an integer", "a string", "an object", ... for messages. */
const char *snap_json_kind(const json_t *v);
/*
 * 0 when v is of JSON type type (JSON_TRUE or JSON_FALSE: either boolean),
 * else -EINVAL with `name: expected an array, got a string` (or `got
 * nothing` for v == NULL) in err.
 */
int snap_json_expect(const json_t *v, json_type type, const char *name, char *err,
		     size_t errlen);

/* "path.key" (or "key" when path is empty) and "path[i]", for messages. */
void snap_path(char *buf, size_t len, const char *path, const char *key);
void snap_path_index(char *buf, size_t len, const char *path, size_t i);

/*
 * Typed getters: obj[key] into *out. path names obj ("" or NULL for the top)
 * and is used with key in messages. max is inclusive. 0 or -EINVAL with a
 * message in err.
 */
int snap_get_u64(const json_t *obj, const char *path, const char *key, uint64_t max,
		 uint64_t *out, char *err, size_t errlen);
int snap_get_u32(const json_t *obj, const char *path, const char *key, uint32_t max,
		 uint32_t *out, char *err, size_t errlen);
int snap_get_bool(const json_t *obj, const char *path, const char *key, bool *out,
		  char *err, size_t errlen);
int snap_get_string(const json_t *obj, const char *path, const char *key, const char **out,
		    char *err, size_t errlen);
/* The member itself when it is an object / array (NULL out for absent+optional). */
int snap_get_object(const json_t *obj, const char *path, const char *key, const json_t **out,
		    char *err, size_t errlen);
int snap_get_array(const json_t *obj, const char *path, const char *key, const json_t **out,
		   char *err, size_t errlen);
/*
 * A base64 string decoding to exactly len bytes (or at most len when
 * outlen != NULL; *outlen gets the size). dst may be NULL to only check.
 */
int snap_get_bytes(const json_t *obj, const char *path, const char *key, void *dst,
		   size_t len, size_t *outlen, char *err, size_t errlen);
/* obj[key] = base64(src, len). 0 or -ENOMEM. */
int snap_set_bytes(json_t *obj, const char *key, const void *src, size_t len);
/* obj[key] = snap_json_u64(v). 0 or -ENOMEM. */
int snap_set_u64(json_t *obj, const char *key, uint64_t v);

/*
 * Field tables with path-style messages (`vcpus[0].sregs.cs.limit = ...`)
 * instead of state_fields_check's `field "x"` style; path may be "" or NULL.
 */
int state_fields_check_path(const struct state_field *f, const json_t *obj, uint32_t version,
			    const char *path, char *err, size_t errlen);

#endif
