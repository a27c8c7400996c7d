//! The store's traits written once, and every wrapper's forwarding generated from them.
//!
//! `store_traits!` declares the traits (in `store`) and, from the same signatures, writes
//! `forward_store!`, which implements every one of them for a wrapper: each method's body is
//! `hook!(self, method(arguments))`, where `hook` is a `macro_rules!` of the wrapper's. Its
//! last arm is what the wrapper does around any call (the health guard: `Guarded::run`);
//! arms before it take the methods it treats apart (`commit`). So a new store method is
//! written in its trait and in each backend, and no wrapper names it unless it treats it
//! apart.
//!
//! An arm matches a method by name: a method renamed falls to the last arm unnoticed, unless
//! what the arm does is a method of the wrapper's own (`Guarded::commit_in_time`), which the
//! rename leaves unused, and `dead_code` says so.

/// `forward_store!`'s impls name what the signatures name, as `store` does.
#[doc(hidden)]
pub mod names {
    pub use crate::store::*;
    pub use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
    pub use confab_core::model::joining::Invite;
}

#[doc(hidden)]
pub use async_trait::async_trait;

/// Declares the store's traits, each `#[async_trait]`, and writes `forward_store!` from the
/// same signatures. A method takes `&self` and named arguments, and has no default body (a
/// default once hid that the guard did not forward the batched audit write): the macro
/// refuses any other.
macro_rules! store_traits {
    ($(
        $(#[$attr:meta])*
        pub trait $trait:ident: $first:ident $(+ $bound:ident)* $(+ $lifetime:lifetime)? {
            $($methods:tt)*
        }
    )*) => {
        $(
            $(#[$attr])*
            #[async_trait::async_trait]
            pub trait $trait: $first $(+ $bound)* $(+ $lifetime)? {
                $($methods)*
            }
        )*
        store_traits!(@forward_store ($) $($trait { $($methods)* })*);
    };
    // `$d` is a `$` for the macro this one writes: `macro_rules!` has no escape for it.
    (@forward_store ($d:tt) $($trait:ident { $($methods:tt)* })*) => {
        /// Implements every store trait for `$wrapper`, each method's body
        /// `$hook!(self, method(arguments))` (`store::forward`).
        #[macro_export]
        macro_rules! forward_store {
            ($d wrapper:ty, $d hook:ident) => {
                const _: () = {
                    use $d crate::store::forward::names::*;
                    $(
                        $d crate::__forward_trait! {
                            $d wrapper, $d hook, $trait [] $($methods)*
                        }
                    )*
                };
            };
        }
    };
}

/// One trait's impl for `forward_store!`: takes the signatures one at a time (their docs
/// dropped) into forwarding methods, then writes the impl whole, since `async_trait` must
/// see every method in it.
#[doc(hidden)]
#[macro_export]
macro_rules! __forward_trait {
    ($wrapper:ty, $hook:ident, $trait:ident [$($forwarded:tt)*]) => {
        #[$crate::store::forward::async_trait]
        impl $trait for $wrapper {
            $($forwarded)*
        }
    };
    (
        $wrapper:ty, $hook:ident, $trait:ident [$($forwarded:tt)*]
        $(#[$doc:meta])*
        async fn $method:ident(&self $(, $arg:ident: $type:ty)* $(,)?) -> $output:ty;
        $($rest:tt)*
    ) => {
        $crate::__forward_trait! {
            $wrapper, $hook, $trait [
                $($forwarded)*
                async fn $method(&self $(, $arg: $type)*) -> $output {
                    $hook!(self, $method($($arg),*))
                }
            ]
            $($rest)*
        }
    };
    (
        $wrapper:ty, $hook:ident, $trait:ident [$($forwarded:tt)*]
        $(#[$doc:meta])*
        fn $method:ident(&self $(, $arg:ident: $type:ty)* $(,)?) -> $output:ty;
        $($rest:tt)*
    ) => {
        $crate::__forward_trait! {
            $wrapper, $hook, $trait [
                $($forwarded)*
                fn $method(&self $(, $arg: $type)*) -> $output {
                    $hook!(self, $method($($arg),*))
                }
            ]
            $($rest)*
        }
    };
}
