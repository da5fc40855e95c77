//! The core's counters (`stats()`) as a record, declared from the core's one list of them
//! ([`meterline_core::stats_fields!`]).

/// Declares [`Stats`] with the core's fields and their conversion.
macro_rules! stats_record {
    ($($(#[$doc:meta])* $vis:vis $field:ident: $ty:ty,)*) => {
        /// A snapshot of a client's counters since it started.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
        pub struct Stats {
            $($(#[$doc])* $vis $field: $ty,)*
        }

        impl From<meterline_core::Stats> for Stats {
            fn from(s: meterline_core::Stats) -> Self {
                Stats { $($field: s.$field,)* }
            }
        }
    };
}

meterline_core::stats_fields!(stats_record);
