//! pgoutput decoder (being written).
