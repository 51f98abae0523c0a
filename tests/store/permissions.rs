//! Permissions, refusals, quarantine and read errors.
