# Thin wrapper: the README's commands. The build itself is meson + ninja.
BUILD ?= build

.PHONY: all amber deps demo check guest-kit clean asan

all: amber

amber:
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) >/dev/null
	ninja -C $(BUILD)

deps:
	@tools/deps.sh

guest-kit: deps
	@tools/guest-kit/build.sh $(BUILD)/guest-kit

demo: deps amber guest-kit
	@tools/demo.sh $(BUILD)

check: deps
	@tools/check.sh $(BUILD)

asan:
	@test -f build-asan/build.ninja || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
	ninja -C build-asan

clean:
	rm -rf $(BUILD) build-asan
