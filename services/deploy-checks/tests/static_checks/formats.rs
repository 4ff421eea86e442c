//! Small parsers for the formats the checks read that have no crate here: Dockerfiles,
//! HAProxy configuration, `.env` files, compose `${…}` substitution and durations. They
//! understand what our files use and say so when they meet something else, rather than
//! guess.

use serde_yaml::Value;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// YAML helpers

/// The value at `path` (mapping keys) under `value`.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

pub fn u64_at(value: &Value, path: &[&str]) -> Option<u64> {
    at(value, path).and_then(Value::as_u64)
}

/// The entries of a mapping, keys as strings; nothing for anything else.
pub fn entries(value: Option<&Value>) -> Vec<(String, &Value)> {
    value
        .and_then(Value::as_mapping)
        .map(|m| m.iter().filter_map(|(k, v)| Some((scalar(k)?, v))).collect())
        .unwrap_or_default()
}

/// The items of a sequence; nothing for anything else.
pub fn items(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A scalar as text, the way an environment variable would hold it.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Every document of a multi-document YAML text.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).map_err(|e| e.to_string()))
        .filter(|doc| !matches!(doc, Ok(Value::Null)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Dockerfile

#[derive(Debug, Clone)]
pub struct Instruction {
    /// Upper case: `RUN`, `COPY`, …
    pub keyword: String,
    /// The rest of the instruction, continuation lines joined.
    pub args: String,
}

#[derive(Debug, Clone)]
pub struct Stage {
    /// The `AS` name.
    pub name: Option<String>,
    /// What `FROM` names: an image, or an earlier stage.
    pub base: String,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            // Comments (and parser directives) may sit between continuation lines too.
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            if let Some(part) = trimmed.strip_suffix('\\') {
                current.push_str(part);
                current.push(' ');
            } else {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
        if !current.trim().is_empty() {
            return Err("the last instruction ends with a `\\` continuation".into());
        }
        let mut stages: Vec<Stage> = Vec::new();
        for line in logical {
            let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            let args = args.split_whitespace().collect::<Vec<_>>().join(" ");
            if keyword == "FROM" {
                let words: Vec<&str> = args.split(' ').filter(|w| !w.starts_with("--")).collect();
                let (base, name) = match words.as_slice() {
                    [base] => (*base, None),
                    [base, as_, name] if as_.eq_ignore_ascii_case("as") => (*base, Some(name.to_string())),
                    _ => return Err(format!("cannot read `FROM {args}`")),
                };
                stages.push(Stage {
                    name,
                    base: base.to_owned(),
                    instructions: Vec::new(),
                });
            } else {
                let stage = stages
                    .last_mut()
                    .ok_or_else(|| format!("`{keyword}` before the first FROM"))?;
                stage.instructions.push(Instruction { keyword, args });
            }
        }
        Ok(Self { stages })
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.as_deref() == Some(name))
    }

    /// The stage and the earlier stages it is built `FROM`, the root first.
    pub fn chain(&self, name: &str) -> Vec<&Stage> {
        let mut chain = Vec::new();
        let mut next = self.stage(name);
        while let Some(stage) = next {
            if chain.iter().any(|s: &&Stage| std::ptr::eq(*s, stage)) {
                break;
            }
            chain.push(stage);
            next = self.stage(&stage.base);
        }
        chain.reverse();
        chain
    }

    /// The image a stage finally starts from, through the stages it builds on.
    pub fn base_image(&self, name: &str) -> Option<String> {
        self.chain(name).first().map(|s| s.base.clone())
    }

    /// Every instruction of `keyword` that applies to the stage, inherited ones first.
    pub fn all(&self, name: &str, keyword: &str) -> Vec<&Instruction> {
        self.chain(name)
            .into_iter()
            .flat_map(|s| s.instructions.iter())
            .filter(|i| i.keyword == keyword)
            .collect()
    }

    /// The instruction of `keyword` in force for the stage (the last one wins).
    pub fn last(&self, name: &str, keyword: &str) -> Option<&Instruction> {
        self.all(name, keyword).into_iter().last()
    }

    /// The environment the stage's image starts its process with.
    pub fn env(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let mut env = BTreeMap::new();
        for instruction in self.all(name, "ENV") {
            let args = &instruction.args;
            if !args.contains('=') {
                // The legacy form `ENV KEY value`.
                let (k, v) = args
                    .split_once(' ')
                    .ok_or_else(|| format!("cannot read `ENV {args}`"))?;
                env.insert(k.to_owned(), v.to_owned());
                continue;
            }
            for pair in args.split(' ') {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("cannot read `{pair}` in `ENV {args}`"))?;
                env.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        }
        Ok(env)
    }

    /// The exec-form `ENTRYPOINT` of a stage.
    pub fn entrypoint(&self, name: &str) -> Option<Vec<String>> {
        exec_form(&self.last(name, "ENTRYPOINT")?.args)
    }

    /// The exec-form command of the stage's `HEALTHCHECK … CMD [...]`.
    pub fn healthcheck(&self, name: &str) -> Option<Vec<String>> {
        let args = &self.last(name, "HEALTHCHECK")?.args;
        let (_, cmd) = args.split_once("CMD ")?;
        exec_form(cmd)
    }

    /// The ports a stage `EXPOSE`s.
    pub fn exposed(&self, name: &str) -> Vec<u16> {
        self.all(name, "EXPOSE")
            .iter()
            .flat_map(|i| i.args.split(' '))
            .filter_map(|p| p.trim_end_matches("/tcp").parse().ok())
            .collect()
    }

    /// The `COPY` instructions of a stage and those it inherits.
    pub fn copies(&self, name: &str) -> Vec<Copy> {
        self.all(name, "COPY")
            .iter()
            .filter_map(|i| Copy::parse(&i.args))
            .collect()
    }
}

/// A JSON array of strings, the exec form of `ENTRYPOINT`, `CMD` and `HEALTHCHECK CMD`.
pub fn exec_form(args: &str) -> Option<Vec<String>> {
    serde_json::from_str(args.trim()).ok()
}

#[derive(Debug, Clone)]
pub struct Copy {
    pub from: Option<String>,
    pub sources: Vec<String>,
    pub destination: String,
}

impl Copy {
    fn parse(args: &str) -> Option<Self> {
        let mut from = None;
        let mut paths = Vec::new();
        for word in args.split(' ') {
            if let Some(stage) = word.strip_prefix("--from=") {
                from = Some(stage.to_owned());
            } else if !word.starts_with("--") {
                paths.push(word.to_owned());
            }
        }
        let destination = paths.pop()?;
        Some(Self {
            from,
            sources: paths,
            destination,
        })
    }
}

// ---------------------------------------------------------------------------------------
// HAProxy

#[derive(Debug, Clone)]
pub struct HaproxySection {
    /// `global`, `defaults`, `frontend`, `backend`, `resolvers`, …
    pub kind: String,
    pub name: Option<String>,
    /// Each line's words, comments removed.
    pub lines: Vec<Vec<String>>,
}

impl HaproxySection {
    /// The lines that start with `keyword` (one or more words).
    pub fn lines_starting(&self, keyword: &[&str]) -> Vec<&[String]> {
        self.lines
            .iter()
            .filter(|l| l.len() >= keyword.len() && l.iter().zip(keyword).all(|(a, b)| a == b))
            .map(Vec::as_slice)
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Haproxy {
    pub sections: Vec<HaproxySection>,
}

impl Haproxy {
    const SECTIONS: [&str; 9] = [
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "resolvers",
        "userlist",
        "peers",
        "program",
    ];

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut sections: Vec<HaproxySection> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or_default();
            let words: Vec<String> = code.split_whitespace().map(str::to_owned).collect();
            if words.is_empty() {
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                if !Self::SECTIONS.contains(&words[0].as_str()) {
                    return Err(format!("line {}: unknown section `{}`", number + 1, words[0]));
                }
                sections.push(HaproxySection {
                    kind: words[0].clone(),
                    name: words.get(1).cloned(),
                    lines: Vec::new(),
                });
            } else {
                let section = sections
                    .last_mut()
                    .ok_or_else(|| format!("line {}: a setting outside any section", number + 1))?;
                section.lines.push(words);
            }
        }
        Ok(Self { sections })
    }

    pub fn sections(&self, kind: &str) -> impl Iterator<Item = &HaproxySection> {
        self.sections.iter().filter(move |s| s.kind == kind)
    }

    pub fn section(&self, kind: &str, name: &str) -> Option<&HaproxySection> {
        self.sections(kind).find(|s| s.name.as_deref() == Some(name))
    }
}

/// The port of a `host:port`, `:port` or `*:port` address.
pub fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':')?.1.parse().ok()
}

/// An HAProxy time (`10s`, `1h`, `500`: milliseconds without a unit), in seconds.
pub fn haproxy_secs(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-6,
        "" | "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    Some(number * scale)
}

// ---------------------------------------------------------------------------------------
// Compose: durations, .env files and ${…} substitution

/// A compose duration (`20s`, `1m30s`, `1h`, `500ms`), in seconds.
pub fn compose_secs(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// `KEY=value` lines; `#` comments and blank lines skipped; surrounding quotes removed.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not KEY=value", number + 1))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        env.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(env)
}

/// Compose's variable substitution: `$$`, `$NAME`, `${NAME}`, `${NAME:-default}`,
/// `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`. A variable that is not set and
/// has no default is an error (compose would substitute an empty string, silently).
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}').ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
            let expression = &after[..end];
            rest = &after[end + 1..];
            let name_end = expression
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expression.len());
            let (name, modifier) = expression.split_at(name_end);
            let value = vars.get(name).filter(|v| !v.is_empty());
            let value = match (value, modifier) {
                (Some(v), _) => v.clone(),
                (None, m) if m.starts_with(":-") => m[2..].to_owned(),
                (None, m) if m.starts_with('-') => m[1..].to_owned(),
                (None, _) => return Err(format!("`{name}` is not set (in `{text}`)")),
            };
            out.push_str(&value);
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            rest = &rest[end..];
            let value = vars
                .get(name)
                .ok_or_else(|| format!("`{name}` is not set (in `{text}`)"))?;
            out.push_str(value);
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_stages_inherit() {
        let d = Dockerfile::parse(
            "# syntax=docker/dockerfile:1\nFROM debian AS base\nUSER 1\nENV A=1 \\\n  # note\n  B=2\nFROM base AS app\nENV B=3\nENTRYPOINT [\"/x\"]\n",
        )
        .unwrap();
        assert_eq!(d.base_image("app").as_deref(), Some("debian"));
        assert_eq!(d.last("app", "USER").unwrap().args, "1");
        let env = d.env("app").unwrap();
        assert_eq!((env["A"].as_str(), env["B"].as_str()), ("1", "3"));
        assert_eq!(d.entrypoint("app").unwrap(), ["/x"]);
    }

    #[test]
    fn interpolation_follows_compose() {
        let vars = BTreeMap::from([("A".to_owned(), "x".to_owned())]);
        assert_eq!(interpolate("$A-${A}-${B:-d}-$$", &vars).unwrap(), "x-x-d-$");
        assert_eq!(interpolate("${A:?set A}", &vars).unwrap(), "x");
        assert!(interpolate("${B:?set B}", &vars).is_err());
        assert!(interpolate("${B}", &vars).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(compose_secs("1m30s"), Some(90.0));
        assert_eq!(compose_secs("20s"), Some(20.0));
        assert_eq!(compose_secs("soon"), None);
        assert_eq!(haproxy_secs("1h"), Some(3600.0));
        assert_eq!(haproxy_secs("500"), Some(0.5));
    }
}
