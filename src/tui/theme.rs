//! Styles that carry meaning, in one place, so that `NO_COLOR` is honoured everywhere.
//!
//! With colour off (<https://no-color.org>: `NO_COLOR` set and not empty) no foreground or
//! background colour is ever set; meaning survives through bold, reverse and dim.

use ratatui::style::{Color, Modifier, Style};

/// The palette in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// False when `NO_COLOR` asks for no colour.
    pub color: bool,
    /// Colours chosen for a light background (`theme = "light"` in the config).
    pub light: bool,
}

impl Default for Theme {
    fn default() -> Self {
        Theme {
            color: true,
            light: false,
        }
    }
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to a non-empty value.
    pub fn from_env() -> Theme {
        Theme::from_no_color(std::env::var_os("NO_COLOR").as_deref())
    }

    /// The theme for a given value of `NO_COLOR` (`None` when unset).
    pub fn from_no_color(value: Option<&std::ffi::OsStr>) -> Theme {
        Theme {
            color: value.is_none_or(std::ffi::OsStr::is_empty),
            light: false,
        }
    }

    /// The configured theme (`theme` in the config file; `NO_COLOR` already turns it into
    /// `no-color` there).
    pub fn from_config(theme: crate::config::Theme) -> Theme {
        match theme {
            crate::config::Theme::Dark => Theme::default(),
            crate::config::Theme::Light => Theme {
                color: true,
                light: true,
            },
            crate::config::Theme::NoColor => Theme::monochrome(),
        }
    }

    /// No colour at all (what `NO_COLOR` gives).
    pub fn monochrome() -> Theme {
        Theme {
            color: false,
            light: false,
        }
    }

    fn fg(self, base: Style, color: Color) -> Style {
        if self.color {
            base.fg(self.adapt(color))
        } else {
            base
        }
    }

    /// On a light background the bright colours are hard to read: use darker ones
    /// (xterm-256 indexes).
    fn adapt(self, color: Color) -> Color {
        if !self.light {
            return color;
        }
        match color {
            Color::Yellow => Color::Indexed(130),
            Color::LightRed => Color::Indexed(160),
            Color::Green => Color::Indexed(28),
            Color::Cyan => Color::Indexed(30),
            Color::Magenta => Color::Indexed(90),
            Color::Blue => Color::Indexed(25),
            other => other,
        }
    }

    /// Waiting: countdowns, pacing, low quota.
    pub fn warn(&self) -> Style {
        self.fg(Style::new().add_modifier(Modifier::BOLD), Color::Yellow)
    }

    /// Errors and exhausted quota. Reverse video stands in for red without colour.
    pub fn error(&self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }

    /// Good news: a finished reply, a full bucket.
    pub fn ok(&self) -> Style {
        self.fg(Style::new(), Color::Green)
    }

    /// Secondary text: hints, thinking, ages.
    pub fn dim(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    /// The "you" header.
    pub fn user_header(&self) -> Style {
        self.fg(Style::new().add_modifier(Modifier::BOLD), Color::Cyan)
    }

    /// The "claude" header.
    pub fn assistant_header(&self) -> Style {
        self.fg(Style::new().add_modifier(Modifier::BOLD), Color::Magenta)
    }

    /// Markdown headings.
    pub fn heading(&self, level: u8) -> Style {
        let base = Style::new().add_modifier(Modifier::BOLD);
        let base = if level <= 1 {
            base.add_modifier(Modifier::UNDERLINED)
        } else {
            base
        };
        self.fg(base, Color::Cyan)
    }

    /// Inline `code`.
    pub fn inline_code(&self) -> Style {
        self.fg(Style::new(), Color::Yellow)
    }

    /// Link text.
    pub fn link(&self) -> Style {
        self.fg(Style::new().add_modifier(Modifier::UNDERLINED), Color::Blue)
    }

    /// The status bar's background line.
    pub fn status_bar(&self) -> Style {
        if self.color && self.light {
            Style::new().bg(Color::Indexed(253)).fg(Color::Indexed(236))
        } else if self.color {
            Style::new().bg(Color::Indexed(236)).fg(Color::Gray)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// A selected or emphasised label in chrome (the `mock` marker).
    pub fn badge(&self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    /// The number of a code block in the transcript (`/copy code N`).
    pub fn code_number(&self) -> Style {
        self.fg(Style::new().add_modifier(Modifier::BOLD), Color::Cyan)
    }

    /// A search match in the transcript (reversed, so it shows without colour too).
    pub fn search_match(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::UNDERLINED)
        }
    }

    /// The search match the view is on.
    pub fn search_current(&self) -> Style {
        Style::new()
            .add_modifier(Modifier::REVERSED)
            .add_modifier(Modifier::BOLD)
    }

    /// A filled gauge cell, coloured by how much is left.
    pub fn gauge(&self, fraction_left: Option<f64>) -> Style {
        match fraction_left {
            Some(f) if f <= 0.0 => self.error(),
            Some(f) if f < 0.2 => self.warn(),
            Some(_) => self.ok(),
            None => self.dim(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_means_no_colour_but_keeps_emphasis() {
        let t = Theme::from_no_color(Some(std::ffi::OsStr::new("1")));
        assert!(!t.color);
        for s in [t.warn(), t.error(), t.ok(), t.heading(1), t.status_bar()] {
            assert_eq!(s.fg, None);
            assert_eq!(s.bg, None);
        }
        assert!(t.error().add_modifier.contains(Modifier::REVERSED));
        assert!(t.warn().add_modifier.contains(Modifier::BOLD));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(Theme::from_no_color(Some(std::ffi::OsStr::new(""))).color);
        assert!(Theme::from_no_color(None).color);
    }

    #[test]
    fn the_config_theme_picks_the_palette() {
        use crate::config::Theme as Configured;
        assert_eq!(Theme::from_config(Configured::NoColor), Theme::monochrome());
        let light = Theme::from_config(Configured::Light);
        assert!(light.color && light.light);
        assert_ne!(
            light.warn().fg,
            Theme::default().warn().fg,
            "darker on a light background"
        );
        assert_eq!(Theme::from_config(Configured::Dark), Theme::default());
    }
}
