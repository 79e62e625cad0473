//! XML-RPC as OpenNebula speaks it: a method call with a session string and
//! integer arguments, answered by `[success, body or message, error code]`.

use std::fmt::Write as _;

/// One argument of a call.
#[derive(Clone, Debug)]
pub enum Arg {
    /// `<string>`, escaped.
    Text(String),
    /// `<i4>`.
    Int(i64),
}

/// The request body of `method(args)`.
pub fn request(method: &str, args: &[Arg]) -> String {
    let mut body = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{}</methodName><params>",
        escape(method)
    );
    for arg in args {
        let value = match arg {
            Arg::Text(s) => format!("<string>{}</string>", escape(s)),
            Arg::Int(i) => format!("<i4>{i}</i4>"),
        };
        let _ = write!(body, "<param><value>{value}</value></param>");
    }
    body.push_str("</params></methodCall>");
    body
}

/// What OpenNebula answered.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// `[true, body, …]`: the body (an XML document, for the info calls).
    Ok(String),
    /// `[false, message, code, …]`.
    Failed {
        /// OpenNebula's message.
        message: String,
        /// Its error code (`0x0100` authentication, `0x0200` authorization, …).
        code: i64,
    },
}

/// Parses a `methodResponse`; an error names what was wrong with it.
pub fn parse(xml: &str) -> Result<Answer, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    if let Some(fault) = doc.descendants().find(|n| n.has_tag_name("fault")) {
        let text = |name: &str| {
            fault
                .descendants()
                .find(|n| n.has_tag_name("name") && n.text() == Some(name))
                .and_then(|n| n.next_sibling_element())
                .map(scalar)
                .unwrap_or_default()
        };
        return Ok(Answer::Failed {
            message: text("faultString"),
            code: text("faultCode").parse().unwrap_or(-1),
        });
    }
    let data = doc
        .descendants()
        .find(|n| n.has_tag_name("data"))
        .ok_or("no array in the answer")?;
    let values: Vec<String> = data
        .children()
        .filter(|n| n.has_tag_name("value"))
        .map(scalar)
        .collect();
    let ok = matches!(values.first().map(String::as_str), Some("1" | "true"));
    let body = values.get(1).cloned().unwrap_or_default();
    Ok(if ok {
        Answer::Ok(body)
    } else {
        Answer::Failed {
            message: body,
            code: values.get(2).and_then(|c| c.parse().ok()).unwrap_or(-1),
        }
    })
}

/// The text of a `<value>`: its typed child's (`<string>`, `<i4>`, …) or
/// its own (an untyped value is a string).
fn scalar(value: roxmltree::Node<'_, '_>) -> String {
    value
        .children()
        .find(|n| n.is_element())
        .map_or_else(|| value.text(), |typed| typed.text())
        .unwrap_or_default()
        .to_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_and_its_answers() {
        let body = request(
            "one.vmpool.infoextended",
            &[Arg::Text("oneadmin:t<k>".into()), Arg::Int(-2)],
        );
        assert!(body.contains("<methodName>one.vmpool.infoextended</methodName>"));
        assert!(body.contains("<string>oneadmin:t&lt;k&gt;</string>"));
        assert!(body.contains("<i4>-2</i4>"));
        let ok = "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>\
                  <value><boolean>1</boolean></value><value><string>&lt;VM_POOL/&gt;</string></value>\
                  <value><i4>0</i4></value></data></array></value></param></params></methodResponse>";
        assert_eq!(parse(ok), Ok(Answer::Ok("<VM_POOL/>".into())));
        let failed = "<methodResponse><params><param><value><array><data>\
                      <value><boolean>0</boolean></value><value>User couldn't be authenticated</value>\
                      <value><i4>256</i4></value></data></array></value></param></params></methodResponse>";
        assert_eq!(
            parse(failed),
            Ok(Answer::Failed {
                message: "User couldn't be authenticated".into(),
                code: 256
            })
        );
        let fault = "<methodResponse><fault><value><struct><member><name>faultCode</name>\
                     <value><int>-32601</int></value></member><member><name>faultString</name>\
                     <value><string>no such method</string></value></member></struct></value>\
                     </fault></methodResponse>";
        assert!(matches!(
            parse(fault),
            Ok(Answer::Failed { code: -32601, .. })
        ));
        assert!(parse("<html>502</html>").is_err());
    }
}
