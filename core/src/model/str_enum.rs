//! The one way the model spells an enumerated value.

/// Defines a string enum with `as_str`, `parse` and `ALL`, so the document schema, the wire
/// and the model share one spelling.
macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Result<Self, $crate::error::ModelError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::error::ModelError::UnknownValue { field: $field, value: other.to_owned() }),
                }
            }
        }
    };
}
pub(crate) use str_enum;
