//! Bot agents: the `scripted` kind's rules and how they answer a visitor's text, and the
//! `webhook` kind's settings. Calling a webhook is I/O and lives in the engine.

use crate::records::{IframeCommand, LeadForm, MessageAttributes};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BotKind {
    Scripted(Box<ScriptedRules>),
    Webhook(WebhookSettings),
}

impl BotKind {
    pub fn kind_str(&self) -> &'static str {
        match self {
            BotKind::Scripted(_) => "scripted",
            BotKind::Webhook(_) => "webhook",
        }
    }
}

/// Where and how a webhook bot is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    pub url: String,
    /// The HMAC-SHA256 key the request body is signed with.
    pub secret: String,
    pub timeout_ms: u64,
    /// Retries after the first attempt, for timeouts, connection errors and 5xx answers.
    pub max_retries: u32,
}

/// A scripted bot: intents tried in order, the first whose keyword appears in the visitor's
/// text answers; otherwise the fallback, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedRules {
    pub intents: Vec<Intent>,
    pub fallback: Option<BotReply>,
    /// Sent as the first message of a conversation, if set.
    #[serde(default)]
    pub greeting: Option<BotReply>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Lower-case words or phrases; any one of them matching selects the intent.
    pub keywords: Vec<String>,
    pub reply: BotReply,
}

/// One reply of a bot, whichever kind produced it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotReply {
    pub text: String,
    #[serde(default)]
    pub speech: Option<String>,
    #[serde(default)]
    pub iframe_commands: Vec<IframeCommand>,
    #[serde(default)]
    pub suggestions: Vec<String>,
    #[serde(default)]
    pub lead_form: Option<LeadForm>,
}

impl BotReply {
    /// The message attributes this reply is stored with.
    pub fn attributes(&self) -> MessageAttributes {
        MessageAttributes {
            speech: Some(self.speech.clone().unwrap_or_else(|| self.text.clone())),
            iframe_commands: self.iframe_commands.clone(),
            suggestions: self.suggestions.clone(),
            lead_form: self.lead_form.clone(),
            attachment: None,
        }
    }
}

impl ScriptedRules {
    /// The reply to `text`, or `None` when no intent matches and there is no fallback.
    pub fn answer(&self, text: &str) -> Option<&BotReply> {
        let text = text.to_lowercase();
        self.intents
            .iter()
            .find(|intent| {
                intent
                    .keywords
                    .iter()
                    .any(|keyword| contains_word(&text, keyword))
            })
            .map(|intent| &intent.reply)
            .or(self.fallback.as_ref())
    }
}

/// Whether `keyword` occurs in `text` on word boundaries ("price" matches "the price?", not
/// "priceless").
fn contains_word(text: &str, keyword: &str) -> bool {
    let keyword = keyword.to_lowercase();
    if keyword.is_empty() {
        return false;
    }
    let is_word_char = |c: char| c.is_alphanumeric();
    text.match_indices(&keyword).any(|(start, matched)| {
        let before = text[..start].chars().next_back();
        let after = text[start + matched.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> BotReply {
        BotReply {
            text: text.to_string(),
            ..BotReply::default()
        }
    }

    #[test]
    fn first_matching_intent_answers_on_word_boundaries() {
        let rules = ScriptedRules {
            intents: vec![
                Intent {
                    keywords: vec!["price".into(), "pricing".into()],
                    reply: reply("prices"),
                },
                Intent {
                    keywords: vec!["dashboard".into()],
                    reply: reply("dashboard"),
                },
            ],
            fallback: Some(reply("fallback")),
            greeting: None,
        };
        assert_eq!(
            rules.answer("Show me the Dashboard!").unwrap().text,
            "dashboard"
        );
        assert_eq!(rules.answer("what is the pricing?").unwrap().text, "prices");
        assert_eq!(rules.answer("priceless").unwrap().text, "fallback");
        assert_eq!(rules.answer("").unwrap().text, "fallback");
    }

    #[test]
    fn no_fallback_means_no_answer() {
        let rules = ScriptedRules::default();
        assert!(rules.answer("hello").is_none());
    }
}
