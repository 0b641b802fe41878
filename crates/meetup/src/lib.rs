//! meetup
