//! SQLite store (to be implemented).
