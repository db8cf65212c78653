/*
 * QEMU's firmware configuration interface (QEMU docs/specs/fw_cfg.rst),
 * so that unmodified OVMF and SeaBIOS find what they look for:
 *
 *   port 0x510 (16-bit write)   selector: the item the data port reads
 *   port 0x511 (8-bit read)     data: the next byte of the selected item
 *   ports 0x514-0x51b           DMA address, 64-bit big endian, written as
 *                               two 32-bit big-endian halves (0x514 high,
 *                               0x518 low); the low write starts the transfer
 *
 * Items are numbered (the "legacy" keys below) or files named in the file
 * directory (FW_CFG_FILE_DIR), whose selectors are handed out in name order
 * as QEMU does. Every item is read-only for the guest (a DMA write sets the
 * error bit). Multi-byte values in numbered items are little endian, in the
 * directory and the DMA descriptor big endian, exactly as in QEMU.
 *
 * The device (class "fw_cfg", src/hw/fw_cfg.c) provides the signature, the
 * ID (with the DMA bit), the UUID and the file directory; the platform adds
 * the rest through the fw_cfg_add_* calls before the guest runs
 * (src/core/platform_fw.c). Saved state is the selector, the read offset and
 * the latched DMA address; the contents are rebuilt from the configuration
 * when a checkpoint is restored.
 */
#ifndef AMBER_FW_CFG_H
#define AMBER_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amber/mem.h"
#include "amber/x86_boot.h"

struct device;

/* Numbered items (QEMU include/standard-headers/linux/qemu_fw_cfg.h) */
#define FW_CFG_SIGNATURE     0x00
#define FW_CFG_ID            0x01
#define FW_CFG_UUID          0x02
#define FW_CFG_RAM_SIZE      0x03
#define FW_CFG_NOGRAPHIC     0x04
#define FW_CFG_NB_CPUS       0x05
#define FW_CFG_MACHINE_ID    0x06
#define FW_CFG_KERNEL_ADDR   0x07
#define FW_CFG_KERNEL_SIZE   0x08
#define FW_CFG_KERNEL_CMDLINE 0x09
#define FW_CFG_INITRD_ADDR   0x0a
#define FW_CFG_INITRD_SIZE   0x0b
#define FW_CFG_BOOT_DEVICE   0x0c
#define FW_CFG_NUMA          0x0d
#define FW_CFG_BOOT_MENU     0x0e
#define FW_CFG_MAX_CPUS      0x0f
#define FW_CFG_KERNEL_ENTRY  0x10
#define FW_CFG_KERNEL_DATA   0x11
#define FW_CFG_INITRD_DATA   0x12
#define FW_CFG_CMDLINE_ADDR  0x13
#define FW_CFG_CMDLINE_SIZE  0x14
#define FW_CFG_CMDLINE_DATA  0x15
#define FW_CFG_SETUP_ADDR    0x16
#define FW_CFG_SETUP_SIZE    0x17
#define FW_CFG_SETUP_DATA    0x18
#define FW_CFG_FILE_DIR      0x19
#define FW_CFG_FILE_FIRST    0x20
#define FW_CFG_FILE_SLOTS    0x40	/* amber offers 64 files (QEMU: 32) */
#define FW_CFG_MAX_ENTRY     (FW_CFG_FILE_FIRST + FW_CFG_FILE_SLOTS)

#define FW_CFG_WRITE_CHANNEL 0x4000
#define FW_CFG_ARCH_LOCAL    0x8000
#define FW_CFG_ENTRY_MASK    0x3fff	/* ~(WRITE_CHANNEL | ARCH_LOCAL) */
#define FW_CFG_INVALID       0xffff

/* x86 arch-local items (QEMU hw/i386/fw_cfg.h) */
#define FW_CFG_ACPI_TABLES   (FW_CFG_ARCH_LOCAL + 0)
#define FW_CFG_SMBIOS_ENTRIES (FW_CFG_ARCH_LOCAL + 1)
#define FW_CFG_IRQ0_OVERRIDE (FW_CFG_ARCH_LOCAL + 2)
#define FW_CFG_E820_TABLE    (FW_CFG_ARCH_LOCAL + 3)
#define FW_CFG_HPET          (FW_CFG_ARCH_LOCAL + 4)

/* FW_CFG_ID bits */
#define FW_CFG_VERSION       0x01	/* traditional interface */
#define FW_CFG_VERSION_DMA   0x02	/* DMA interface */

/* DMA control word bits (fw_cfg.rst "FWCfgDmaAccess"); selector in 31:16 */
#define FW_CFG_DMA_CTL_ERROR  0x01
#define FW_CFG_DMA_CTL_READ   0x02
#define FW_CFG_DMA_CTL_SKIP   0x04
#define FW_CFG_DMA_CTL_SELECT 0x08
#define FW_CFG_DMA_CTL_WRITE  0x10

/* What a read of the DMA address register returns: "QEMU CFG", big endian. */
#define FW_CFG_DMA_SIGNATURE 0x51454d5520434647ULL

#define FW_CFG_MAX_FILE_PATH 56

/* The DMA descriptor in guest memory (all fields big endian). */
struct fw_cfg_dma_access {
	uint32_t control;
	uint32_t length;
	uint64_t address;
} __attribute__((packed));

/* One file directory entry (big endian size and select). */
struct fw_cfg_file {
	uint32_t size;
	uint16_t select;
	uint16_t reserved;
	char name[FW_CFG_MAX_FILE_PATH];
} __attribute__((packed));

/*
 * Adding items. All return 0, -EINVAL (dev is not an fw_cfg device, a bad
 * key or name, an item larger than 4 GiB - 1), -EEXIST (the key or file
 * name is taken), -ENOSPC (all FW_CFG_FILE_SLOTS file slots used) or
 * -ENOMEM. The plain calls copy the bytes; the _take calls take ownership
 * of a malloc'd buffer (freed by the device, also when they fail).
 * Keys may carry FW_CFG_ARCH_LOCAL; they must be below FW_CFG_FILE_FIRST
 * (files get their keys from fw_cfg_add_file).
 */
int fw_cfg_add_bytes(struct device *dev, uint16_t key, const void *data, size_t len);
int fw_cfg_add_bytes_take(struct device *dev, uint16_t key, void *data, size_t len);
int fw_cfg_add_i16(struct device *dev, uint16_t key, uint16_t value);	/* little endian */
int fw_cfg_add_i32(struct device *dev, uint16_t key, uint32_t value);
int fw_cfg_add_i64(struct device *dev, uint16_t key, uint64_t value);
int fw_cfg_add_string(struct device *dev, uint16_t key, const char *s);	/* with its NUL */
/* name: at most FW_CFG_MAX_FILE_PATH - 1 bytes. */
int fw_cfg_add_file(struct device *dev, const char *name, const void *data, size_t len);
int fw_cfg_add_file_take(struct device *dev, const char *name, void *data, size_t len);
/* The selector of a file (FW_CFG_FILE_FIRST..), or -ENOENT. */
int fw_cfg_file_key(struct device *dev, const char *name);

/* ---- the x86 PC items (src/hw/fw_cfg_x86.c) ----------------------------- */

/*
 * KVM's EPT identity map page and real-mode TSS (4 pages) where QEMU puts
 * them, below any firmware image of up to 16 MiB; reserved in etc/e820.
 */
#define FW_CFG_X86_KVM_RESERVED_BASE 0xfeffc000ULL
#define FW_CFG_X86_KVM_RESERVED_SIZE 0x4000ULL

/*
 * QEMU's etc/e820 for gm (hw/i386/pc.c, target/i386/kvm/kvm.c): the KVM
 * reservation first (QEMU adds it when KVM starts, before the board), then
 * RAM below 4 GiB from 0, then RAM above 4 GiB. Only RAM and reserved
 * entries: the legacy holes (EBDA, VGA, BIOS) are the firmware's business.
 * Returns the number of entries or -ENOSPC.
 */
int fw_cfg_x86_e820(const struct guest_mem *gm, struct e820_entry *tab, int max);

/*
 * The machine items QEMU's fw_cfg_arch_create() and fw_cfg_init_io_dma()
 * give a pc machine: RAM size, boot and maximum CPU counts, NUMA (no nodes),
 * IRQ0 override, boot menu off, no graphics, and the file etc/e820.
 */
int fw_cfg_x86_add_machine(struct device *dev, const struct guest_mem *gm, int ncpus);

/*
 * The PCI windows the firmware assigns BARs from, for \_SB.PCI0._CRS (QEMU's
 * DSDT covers them the same way): 32-bit from the end of low RAM (up to the
 * IOAPIC, as PCI_MMIO32_END); 64-bit from the end of RAM rounded up to 1 GiB
 * (SeaBIOS) to the end of OVMF's default 32 GiB aperture, which OVMF aligns
 * to its size (OvmfPkg PlatformInitLib PlatformGetFirstNonAddress()).
 * Bounds are inclusive for the end.
 */
void fw_cfg_x86_pci_windows(const struct guest_mem *gm, uint64_t *mmio32_base,
			    uint64_t *mmio64_base, uint64_t *mmio64_end);

/*
 * A bzImage for the firmware to load, as QEMU's x86_load_linux() puts it in
 * fw_cfg when firmware boots: the patched setup header and the setup code
 * (SETUP_ADDR/SIZE/DATA), the protected-mode kernel (KERNEL_*), the command
 * line (CMDLINE_*) and the initrd (INITRD_*) with the address QEMU picks
 * below below_4g_mem. cmdline may be NULL (empty). Returns 0 or -errno with a
 * message naming the file in err.
 */
#define FW_CFG_X86_ACPI_DATA_SIZE (0x20000 + 0x8000)	/* QEMU pc's acpi_data_size */
int fw_cfg_x86_add_linux(struct device *dev, const char *kernel, const char *initrd,
			 const char *cmdline, uint64_t below_4g_mem, char *err, size_t errlen);

/* Read a whole host file into a malloc'd buffer (at most max bytes). */
int fw_cfg_read_host_file(const char *what, const char *path, size_t max, void **data,
			  size_t *len, char *err, size_t errlen);

/*
 * A firmware image (OVMF.fd, bios-256k.bin): read whole, its size a
 * multiple of 64 KiB and at most 16 MiB (what fits below 4 GiB above
 * FW_CFG_X86_KVM_RESERVED_BASE). *data is malloc'd. 0 or -errno with a
 * message naming the file.
 */
#define FIRMWARE_MAX_SIZE    (16ULL << 20)
#define FIRMWARE_SIZE_ALIGN  (64ULL << 10)
#define FIRMWARE_ISA_BIOS_SIZE (128ULL << 10)	/* copy at 1 MiB - 128 KiB */
int firmware_image_load(const char *path, void **data, size_t *size, char *err, size_t errlen);

#endif
