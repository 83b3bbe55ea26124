"""Image builder for the SOKOUL appliance: rootfs, customize, disk, outputs, QEMU boot check."""
