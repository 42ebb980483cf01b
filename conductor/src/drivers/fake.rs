//! Ironic's `fake` interfaces: they succeed at once and touch no hardware.
//!
//! Behaviour matches `ironic/drivers/modules/fake.py`: fake power records the
//! requested state; fake management supports only pxe and always reports pxe, not persistent;
//! fake deploy, clean, inspect and rescue have nothing to do.

/// Boot devices the fake management interface supports.
pub const SUPPORTED_BOOT_DEVICES: [&str; 1] = ["pxe"];

/// Boot devices `noop` management supports (none: it cannot set one).
pub const NOOP_BOOT_DEVICES: [&str; 0] = [];
