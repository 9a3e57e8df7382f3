//! WhatsApp Cloud API channel for Airlock (work in progress).
