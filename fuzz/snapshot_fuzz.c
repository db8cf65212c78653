/*
 * libFuzzer target for the vm.json loader: any input is parsed and checked
 * like a checkpoint's vm.json; whatever passes every check must also decode
 * for loading (no partial restore), and nothing may crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "amber/snapshot.h"
#include "amber/x86_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	char err[512];

	if (!root)
		return 0;
	if (snap_check_document(root, err, sizeof(err)) == 0 &&
	    snap_check_devices(root, err, sizeof(err)) == 0) {
		const json_t *vcpus = json_object_get(root, "vcpus");
		struct x86_vm_state vm;

		for (size_t i = 0; i < json_array_size(vcpus); i++) {
			struct x86_vcpu_state v;

			if (x86_vcpu_state_from_json(json_array_get(vcpus, i), 0, &v, err, sizeof(err)))
				abort();	/* checked but not loadable: a partial restore */
			x86_vcpu_state_free(&v);
		}
		if (x86_vm_state_from_json(json_object_get(root, "vm"), 0, true, 0, &vm))
			abort();
	}
	json_decref(root);
	return 0;
}
