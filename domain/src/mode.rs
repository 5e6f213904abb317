//! What a file is for. The mode decides the blob prefix (contract section 4) and, later, the
//! size cap and allowed types.

use std::fmt;
use std::str::FromStr;

use crate::ids::{FirmId, UserId};

/// The six modes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Firm,
    Profile,
    Contact,
    Message,
    Template,
    Import,
}

/// A mode name that is neither canonical nor a legacy alias.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode `{0}`: expected one of Firm, Profile, Contact, Message, Template, Import")]
pub struct UnknownMode(pub String);

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Firm,
        Mode::Profile,
        Mode::Contact,
        Mode::Message,
        Mode::Template,
        Mode::Import,
    ];

    /// The canonical name, as stored and as sent on the wire.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Mode::Firm => "Firm",
            Mode::Profile => "Profile",
            Mode::Contact => "Contact",
            Mode::Message => "Message",
            Mode::Template => "Template",
            Mode::Import => "Import",
        }
    }

    /// Reads a canonical name back (as stored): legacy aliases and other spellings, which
    /// `from_str` accepts from clients, are never written, so here they are `None`.
    pub fn from_canonical(stored: &str) -> Option<Self> {
        Mode::ALL.into_iter().find(|m| m.as_str() == stored)
    }

    /// The folder of the container a file of this mode goes to. Profile pictures belong to a
    /// user, everything else to the firm.
    pub fn blob_prefix(&self, firm: FirmId, user: UserId) -> String {
        match self {
            Mode::Firm => format!("firms/{firm}"),
            Mode::Profile => format!("profiles/{user}"),
            Mode::Contact => format!("contacts/{firm}"),
            Mode::Message => format!("messages/{firm}"),
            Mode::Template => format!("templates/{firm}"),
            Mode::Import => format!("imports/{firm}"),
        }
    }
}

impl FromStr for Mode {
    type Err = UnknownMode;

    /// Accepts the canonical names and the seed diagrams' legacy aliases (`User` for Profile,
    /// `WhatsappMedia` for Message), ignoring ASCII case as an ASP.NET model binder does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let mode = match lower.as_str() {
            "firm" => Mode::Firm,
            "profile" | "user" => Mode::Profile,
            "contact" => Mode::Contact,
            "message" | "whatsappmedia" => Mode::Message,
            "template" => Mode::Template,
            "import" => Mode::Import,
            _ => return Err(UnknownMode(s.to_owned())),
        };
        Ok(mode)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn legacy_aliases_map_to_their_canonical_modes() {
        assert_eq!("User".parse::<Mode>(), Ok(Mode::Profile));
        assert_eq!("WhatsappMedia".parse::<Mode>(), Ok(Mode::Message));
        assert_eq!("whatsappmedia".parse::<Mode>(), Ok(Mode::Message));
    }

    #[test]
    fn every_canonical_name_round_trips() {
        for mode in Mode::ALL {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
        }
    }

    #[test]
    fn only_canonical_names_read_back() {
        assert_eq!(Mode::from_canonical("Profile"), Some(Mode::Profile));
        assert_eq!(Mode::from_canonical("User"), None);
        assert_eq!(Mode::from_canonical("profile"), None);
    }

    #[test]
    fn an_unknown_mode_is_rejected_with_its_name() {
        let err = "Avatar".parse::<Mode>().unwrap_err();
        assert!(err.to_string().contains("Avatar"));
    }

    #[test]
    fn profile_files_go_under_the_user_and_the_rest_under_the_firm() {
        let firm = FirmId::from_uuid(Uuid::from_u128(1));
        let user = UserId::from_uuid(Uuid::from_u128(2));
        assert_eq!(
            Mode::Profile.blob_prefix(firm, user),
            format!("profiles/{user}")
        );
        assert_eq!(Mode::Firm.blob_prefix(firm, user), format!("firms/{firm}"));
        assert_eq!(
            Mode::Contact.blob_prefix(firm, user),
            format!("contacts/{firm}")
        );
        assert_eq!(
            Mode::Message.blob_prefix(firm, user),
            format!("messages/{firm}")
        );
        assert_eq!(
            Mode::Template.blob_prefix(firm, user),
            format!("templates/{firm}")
        );
        assert_eq!(
            Mode::Import.blob_prefix(firm, user),
            format!("imports/{firm}")
        );
    }
}
