//! Logging what came from outside Flex (request paths and bodies, agents' messages, the
//! array's error texts): such text may hold control characters, and a newline in a log field
//! would forge a log line. [`escaped`] renders any value with its control characters escaped
//! (`\n`, `\u{1b}`, …) and everything else as it is.

use std::fmt::{self, Display, Write};

/// A value rendered with its control characters escaped.
pub struct Escaped<T>(T);

/// For every log field whose text may have come from outside Flex: `%escaped(&message)`.
pub fn escaped<T: Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

/// Writes through to `out`, escaping control characters on the way.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if c.is_control() {
                for escaped in c.escape_debug() {
                    self.0.write_char(escaped)?;
                }
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escaped("host 'a\nforged line'\r\u{1b}[31m").to_string(),
            "host 'a\\nforged line'\\r\\u{1b}[31m"
        );
        assert_eq!(escaped("déjà vu – ok").to_string(), "déjà vu – ok");
    }
}
