//! meetings
