//! campaigns
