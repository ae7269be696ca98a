//! Tool calls in a stream: the pieces the codecs decode, and their assembly into whole calls.

use super::ToolCall;

/// A tool call, or a fragment of one, as one stream chunk carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallChunk {
    /// OpenAI's `index`: fragments with the same index are one call. `None`: a whole call
    /// (Ollama sends each call complete, in one chunk).
    pub index: Option<u64>,
    /// The server's id for the call, where this chunk carries one.
    pub id: Option<String>,
    /// The function's name, where this chunk carries it (OpenAI: the first fragment).
    pub name: Option<String>,
    /// An arguments fragment (OpenAI), or the whole arguments as JSON text (Ollama).
    pub arguments: String,
}

/// Whole tool calls assembled from chunks, in the order the calls began.
#[derive(Debug, Default)]
pub struct ToolCallAssembly {
    calls: Vec<ToolCall>,
    /// The OpenAI `index` of each call in `calls` (`None` for a whole call).
    indices: Vec<Option<u64>>,
}

impl ToolCallAssembly {
    /// Add a chunk: a fragment joins the earlier call with its index (arguments appended,
    /// id and name kept from the first fragment that had them); anything else starts a call.
    pub fn push(&mut self, chunk: ToolCallChunk) {
        let existing = chunk
            .index
            .and_then(|i| self.indices.iter().position(|&have| have == Some(i)));
        let call = match existing {
            Some(at) => &mut self.calls[at],
            None => {
                self.calls.push(ToolCall::default());
                self.indices.push(chunk.index);
                self.calls.last_mut().expect("just pushed")
            }
        };
        if let Some(id) = chunk.id.filter(|id| !id.is_empty()) {
            if call.id.is_empty() {
                call.id = id;
            }
        }
        if let Some(name) = chunk.name.filter(|n| !n.is_empty()) {
            if call.name.is_empty() {
                call.name = name;
            }
        }
        call.arguments.push_str(&chunk.arguments);
    }

    /// Calls assembled so far.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no tool call came.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The assembled calls; one the server sent no id for is `call_<position>`.
    pub fn into_calls(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                if c.id.is_empty() {
                    c.id = format!("call_{i}");
                }
                c
            })
            .collect()
    }
}

/// The JSON type of `v`, in words for an error message.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `obj[key]` as an optional string: absent and null are `None`, another type is the
/// error's reason (`what` names the field).
pub(crate) fn optional_str(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    what: &str,
) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{what} is {}, not a string", json_type(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> ToolCallChunk {
        ToolCallChunk {
            index: Some(index),
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: args.to_owned(),
        }
    }

    #[test]
    fn fragments_join_by_index_in_the_order_the_calls_began() {
        let mut a = ToolCallAssembly::default();
        a.push(fragment(1, Some("call_b"), Some("search"), ""));
        a.push(fragment(0, Some("call_a"), Some("fetch"), "{\"u"));
        a.push(fragment(1, None, None, "{\"q\":"));
        a.push(fragment(0, Some(""), None, "rl\":1}"));
        a.push(fragment(1, None, None, "\"x\"}"));
        assert_eq!(a.len(), 2);
        assert_eq!(
            a.into_calls(),
            vec![
                ToolCall {
                    id: "call_b".into(),
                    name: "search".into(),
                    arguments: "{\"q\":\"x\"}".into()
                },
                ToolCall {
                    id: "call_a".into(),
                    name: "fetch".into(),
                    arguments: "{\"url\":1}".into()
                },
            ]
        );
    }

    #[test]
    fn whole_calls_stay_apart_and_get_numbered_ids() {
        let mut a = ToolCallAssembly::default();
        for name in ["a", "b"] {
            a.push(ToolCallChunk {
                name: Some(name.into()),
                arguments: "{}".into(),
                ..Default::default()
            });
        }
        let calls = a.into_calls();
        assert_eq!(
            calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["call_0", "call_1"]
        );
        assert_eq!(calls[1].name, "b");
    }
}
