/*
 * Devices. Every device fills one struct device_class and registers it with
 * DEVICE_CLASS(); nothing else in the tree names it. The machine is assembled
 * from a list of device instances created by class name from the config.
 *
 * Saved state: a device declares its fields once (struct state_field table)
 * and uses the same table to save, check and load (src/snapshot/fields.c).
 * A class with save == NULL cannot be checkpointed: checkpointing a VM that
 * has it fails with a message naming the device.
 */
#ifndef AMBER_DEVICE_H
#define AMBER_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "amber/bus.h"
#include "amber/irq.h"
#include "amber/mem.h"

struct machine;
struct device;

struct device_class {
	const char *name;		/* "uart16550", "nvme", ... */
	uint32_t state_version;		/* version of the saved state section */
	/* args: the device's option string ("path=x,ro,serial=S"), may be NULL */
	int (*realize)(struct device *dev, struct machine *m, const char *args);
	void (*unrealize)(struct device *dev);
	void (*reset)(struct device *dev);
	/* Stop starting new work and drain in-flight I/O; resume undoes it. */
	int (*quiesce)(struct device *dev);
	int (*resume)(struct device *dev);
	/* Fill obj with the device's architectural state. */
	int (*save)(struct device *dev, json_t *obj);
	/*
	 * Validate a saved section of version `version` without touching any
	 * device; on error write a message naming the field into err.
	 */
	int (*check)(const json_t *obj, uint32_t version, char *err, size_t errlen);
	/*
	 * Optional: does a section that check() accepted fit this instance
	 * (identity registers, vector counts, disks)? Called by restore before
	 * anything is loaded; changes nothing; err names the field.
	 */
	int (*match)(struct device *dev, const json_t *obj, char *err, size_t errlen);
	/* Load a section that check() (and match()) accepted. */
	int (*load)(struct device *dev, const json_t *obj, uint32_t version);
};

struct device {
	const struct device_class *cls;
	char id[32];			/* instance name: "com1", "nvme0" */
	char *args;			/* option string it was created with */
	struct machine *machine;
	void *priv;			/* the device's own state */
	struct device *next;		/* machine's device list, creation order */
};

/* Linker-section registry (like bhyve's linker sets). */
#define DEVICE_CLASS(cls_)						\
	static const struct device_class *const __amber_devclass_##cls_	\
	__attribute__((used, section("amber_devclasses"), aligned(sizeof(void *)))) = &(cls_)

const struct device_class *device_class_find(const char *name);
/* Calls fn for every registered class (for `amber help devices`). */
void device_class_foreach(void (*fn)(const struct device_class *, void *), void *opaque);

/*
 * Create, realize and append a device to m->devices. err gets a message for
 * people. 0 or -errno.
 */
int device_create(struct machine *m, const char *cls_name, const char *id,
		  const char *args, struct device **out, char *err, size_t errlen);
void device_destroy_all(struct machine *m);
struct device *device_find(struct machine *m, const char *id);

/*
 * Option strings "key=value,flag,key2=value2": copy the value of key into buf
 * (flags give ""), 1 if present, 0 if absent, -ENAMETOOLONG if buf is small.
 * opt_check_keys returns -EINVAL naming the first key not in the NULL-ended
 * list allowed.
 */
int opt_get(const char *args, const char *key, char *buf, size_t len);
int opt_check_keys(const char *args, const char *const *allowed, char *err, size_t errlen);

/* ---- state field tables ------------------------------------------------ */

enum state_type {
	ST_END = 0,
	ST_U8, ST_U16, ST_U32, ST_U64,	/* JSON integers (U64 as string if > 2^53) */
	ST_BOOL,
	ST_BYTES,			/* opaque bytes, base64 string */
};

struct state_field {
	const char *name;
	enum state_type type;
	size_t offset;			/* offsetof in the state struct */
	uint32_t count;			/* elements (arrays); for ST_BYTES, bytes */
	uint64_t max;			/* inclusive bound per element; 0: type's range */
	uint32_t since;			/* state version that added the field */
};

#define STATE_FIELD_(T, S, m, n, mx) \
	{ .name = #m, .type = (T), .offset = offsetof(S, m), .count = (n), .max = (mx), .since = 1 }
#define STATE_U8(S, m)        STATE_FIELD_(ST_U8, S, m, 1, 0)
#define STATE_U16(S, m)       STATE_FIELD_(ST_U16, S, m, 1, 0)
#define STATE_U32(S, m)       STATE_FIELD_(ST_U32, S, m, 1, 0)
#define STATE_U64(S, m)       STATE_FIELD_(ST_U64, S, m, 1, 0)
#define STATE_BOOL(S, m)      STATE_FIELD_(ST_BOOL, S, m, 1, 0)
#define STATE_U8_MAX(S, m, mx)  STATE_FIELD_(ST_U8, S, m, 1, mx)
#define STATE_U16_MAX(S, m, mx) STATE_FIELD_(ST_U16, S, m, 1, mx)
#define STATE_U32_MAX(S, m, mx) STATE_FIELD_(ST_U32, S, m, 1, mx)
#define STATE_U64_MAX(S, m, mx) STATE_FIELD_(ST_U64, S, m, 1, mx)
#define STATE_ARRAY_U8(S, m)  STATE_FIELD_(ST_U8, S, m, sizeof(((S *)0)->m), 0)
#define STATE_ARRAY_U32(S, m) STATE_FIELD_(ST_U32, S, m, sizeof(((S *)0)->m) / 4, 0)
#define STATE_ARRAY_U64(S, m) STATE_FIELD_(ST_U64, S, m, sizeof(((S *)0)->m) / 8, 0)
#define STATE_BYTES(S, m)     STATE_FIELD_(ST_BYTES, S, m, sizeof(((S *)0)->m), 0)
#define STATE_END             { .name = NULL, .type = ST_END }

/* Write every field of base into obj (arrays as JSON arrays). */
int state_fields_save(const struct state_field *f, const void *base, json_t *obj);
/*
 * Check obj against the table for a section of `version`: presence of every
 * field with since <= version, types, array lengths, ranges. Messages name
 * the field: `field "lsr" = 300 exceeds 255`. 0 or -EINVAL.
 */
int state_fields_check(const struct state_field *f, const json_t *obj, uint32_t version,
		       char *err, size_t errlen);
/* Load after a successful check; fields newer than version keep their value. */
int state_fields_load(const struct state_field *f, void *base, const json_t *obj, uint32_t version);

#endif
