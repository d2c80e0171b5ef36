//! `demo --html`: the Slack stand-in's channels as one self-contained page that looks like Slack — a sidebar
//! of channels, then each channel's messages with author, time, 📌 and thread replies, Block Kit rendered and
//! uploaded PNGs embedded as `data:` URIs. Inline CSS and one small inline script; nothing is fetched.
//!
//! Every text from Slack goes through [`mrkdwn`]'s HTML rendering, which escapes it. The script only reads the
//! page: `?only=<anchor>` shows one message alone (for the README pictures), and `?check` writes what a
//! reader sees (`innerText`) and each image's natural size and the share of
//! its pixels painted into `#check`, for the headless-browser test.

use serde_json::Value;

use crate::standins::mrkdwn::{self, html_escape, Names};
use crate::standins::slack::{Channel, Message, UploadedFile};

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.46 -apple-system,"Segoe UI","Liberation Sans",Helvetica,Arial,sans-serif;color:#1d1c1d;background:#fff;display:flex}
nav{width:240px;min-height:100vh;background:#3f0e40;color:#cfc3cf;padding:16px 0;flex:none}
nav h1{color:#fff;font-size:18px;margin:0 16px 12px}
nav a{display:block;color:#cfc3cf;text-decoration:none;padding:3px 16px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
nav a:hover{background:#350d36}
main{flex:1;min-width:0}
.intro{padding:12px 20px;color:#616061;border-bottom:1px solid #ddd}
.channel-head{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:10px 20px;z-index:1}
.channel-head h2{margin:0;font-size:18px}
.channel-head .topic{color:#616061;font-size:13px}
.bookmarks{font-size:13px;color:#616061;margin-top:2px}
.msg{display:flex;gap:8px;padding:8px 20px}
.msg:hover{background:#f8f8f8}
.avatar{width:36px;height:36px;border-radius:4px;background:#4a154b;color:#fff;font-weight:700;display:flex;align-items:center;justify-content:center;flex:none}
.avatar.bot{background:#2eb67d}
.content{min-width:0;flex:1}
.who{font-weight:900}
.app{font-size:10px;background:#ddd;color:#616061;border-radius:2px;padding:0 3px;margin-left:4px;font-weight:700}
.time{color:#616061;font-size:12px;margin-left:6px}
.pinned{font-size:12px;color:#616061}
.edited{font-size:12px;color:#616061}
.thread{margin-left:44px;border-left:2px solid #ddd}
.blk-header{font-size:18px;font-weight:900;margin:4px 0}
.blk-section{display:flex;gap:8px;margin:4px 0}
.blk-main{flex:1}
.blk-fields{display:grid;grid-template-columns:1fr 1fr;gap:4px 16px;margin-top:4px}
.blk-context{font-size:12px;color:#616061;margin:4px 0}
.blk-context span+span::before{content:" · "}
.blk-actions{margin:6px 0;display:flex;flex-wrap:wrap;gap:8px}
.btn{display:inline-block;border:1px solid #bbb;border-radius:4px;padding:2px 12px;font-weight:700;font-size:13px;background:#fff}
.btn.primary{background:#007a5a;color:#fff;border-color:#007a5a}
.btn.danger{background:#e01e5a;color:#fff;border-color:#e01e5a}
.blk-divider{border:0;border-top:1px solid #ddd}
.attachment{border-left:4px solid #ddd;padding-left:10px;margin:4px 0}
code{font-family:Menlo,Monaco,"Liberation Mono",monospace;font-size:12px;background:#f6f6f6;border:1px solid #e0e0e0;border-radius:3px;padding:0 3px;color:#e01e5a}
code.pre{display:block;white-space:pre;color:#1d1c1d;padding:6px;overflow-x:auto}
.mention{background:#e8f5fa;color:#1264a3;border-radius:3px;padding:0 2px}
a{color:#1264a3}
img.file{max-width:560px;width:100%;border:1px solid #ddd;border-radius:6px;margin-top:4px;display:block}
.only nav,.only .intro{display:none}
"#;

const SCRIPT: &str = r#"
(function(){
  var q=new URLSearchParams(location.search);
  var only=q.get('only');
  if(only){
    var el=document.getElementById(only);
    if(el){var main=document.querySelector('main');main.innerHTML='';main.appendChild(el);document.body.classList.add('only');}
  }
  if(q.has('check')){
    var imgs=Array.prototype.slice.call(document.images);
    function painted(i){
      var c=document.createElement('canvas');c.width=i.naturalWidth;c.height=i.naturalHeight;
      var g=c.getContext('2d');g.drawImage(i,0,0);
      var d=g.getImageData(0,0,c.width,c.height).data,n=0,o=0;
      for(var p=3;p<d.length;p+=4*97){n++;if(d[p]>0)o++;}
      return n?Math.round(100*o/n)+'%':'0%';
    }
    Promise.all(imgs.map(function(i){return i.decode().then(function(){return painted(i);},function(){return 'broken';});})).then(function(states){
      var out=document.createElement('pre');out.id='check';out.style.display='none';
      out.setAttribute('data-images',imgs.map(function(i,k){return i.naturalWidth+'x'+i.naturalHeight+':'+states[k];}).join(' '));
      out.setAttribute('data-height',String(Math.ceil(document.querySelector('main').getBoundingClientRect().height)));
      out.textContent=document.body.innerText;
      document.body.appendChild(out);
    });
  }
})();
"#;

/// A message the page should be able to show alone (`?only=<name>`).
pub struct Anchor {
    pub channel_id: String,
    pub ts: String,
    pub name: String,
}

/// The whole page. `intro` (mrkdwn) is shown above the channels.
pub fn page(
    title: &str,
    intro: &str,
    channels: &[Channel],
    files: &[UploadedFile],
    anchors: &[Anchor],
    names: Names,
) -> String {
    let shown: Vec<&Channel> = channels.iter().filter(|c| !c.messages.is_empty()).collect();
    let mut out = String::new();
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{CSS}</style></head><body>",
        html_escape(title)
    ));
    out.push_str(&format!("<nav><h1>{}</h1>", html_escape(title)));
    for ch in &shown {
        let lock = if ch.is_private { "🔒 " } else { "# " };
        out.push_str(&format!(
            "<a href=\"#ch-{id}\">{lock}{name}</a>",
            id = html_escape(&ch.id),
            name = html_escape(&ch.name)
        ));
    }
    out.push_str("</nav><main>");
    out.push_str(&format!(
        "<div class=\"intro\">{}</div>",
        mrkdwn::to_html(intro, names)
    ));
    for ch in shown {
        out.push_str(&format!(
            "<section class=\"channel\" id=\"ch-{}\"><div class=\"channel-head\"><h2>{}{}</h2>",
            html_escape(&ch.id),
            if ch.is_private { "🔒 " } else { "# " },
            html_escape(&ch.name)
        ));
        if !ch.topic.is_empty() {
            out.push_str(&format!(
                "<div class=\"topic\">{}</div>",
                mrkdwn::to_html(&ch.topic, names)
            ));
        }
        if !ch.bookmarks.is_empty() {
            let marks: Vec<String> = ch
                .bookmarks
                .iter()
                .map(|b| {
                    mrkdwn::segs_to_html(&[mrkdwn::Seg {
                        text: format!("🔖 {}", b.title),
                        style: mrkdwn::Style::default(),
                        kind: mrkdwn::Kind::Link(b.link.clone()),
                    }])
                })
                .collect();
            out.push_str(&format!(
                "<div class=\"bookmarks\">{}</div>",
                marks.join(" ")
            ));
        }
        out.push_str("</div>");
        let is_top = |m: &Message| m.thread_ts.as_deref().is_none_or(|t| t == m.ts);
        for m in ch.messages.iter().filter(|m| is_top(m)) {
            message(&mut out, ch, m, false, files, anchors, names);
            for r in ch
                .messages
                .iter()
                .filter(|r| !is_top(r) && r.thread_ts.as_deref() == Some(m.ts.as_str()))
            {
                message(&mut out, ch, r, true, files, anchors, names);
            }
        }
        out.push_str("</section>");
    }
    out.push_str(&format!("</main><script>{SCRIPT}</script></body></html>\n"));
    out
}

fn message(
    out: &mut String,
    ch: &Channel,
    m: &Message,
    reply: bool,
    files: &[UploadedFile],
    anchors: &[Anchor],
    names: Names,
) {
    let id = anchors
        .iter()
        .find(|a| a.channel_id == ch.id && a.ts == m.ts)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| format!("m-{}-{}", ch.id, m.ts.replace('.', "-")));
    let who = names(&m.user);
    let bot = m.user == crate::standins::slack::BOT_USER_ID;
    let initial = who.chars().next().unwrap_or('?').to_uppercase().to_string();
    out.push_str(&format!(
        "<div class=\"msg{}\" id=\"{}\"><div class=\"avatar{}\">{}</div><div class=\"content\">",
        if reply { " thread" } else { "" },
        html_escape(&id),
        if bot { " bot" } else { "" },
        html_escape(&initial)
    ));
    if ch.pins.contains(&m.ts) {
        out.push_str("<div class=\"pinned\">📌 Pinned by incident-bot</div>");
    }
    out.push_str(&format!(
        "<div><span class=\"who\">{}</span>{}<span class=\"time\">{}</span>{}</div>",
        html_escape(&who),
        if bot {
            "<span class=\"app\">APP</span>"
        } else {
            ""
        },
        crate::standins::story::time_of(&m.ts),
        if m.edited > 0 {
            " <span class=\"edited\">(edited)</span>"
        } else {
            ""
        }
    ));
    match &m.blocks {
        Some(b) => out.push_str(&mrkdwn::blocks_to_html(b, names)),
        None => out.push_str(&format!(
            "<div class=\"blk-text\">{}</div>",
            mrkdwn::to_html(&m.text, names)
        )),
    }
    for a in m
        .attachments
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let color = a
            .get("color")
            .and_then(Value::as_str)
            .filter(|c| {
                c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|x| x.is_ascii_hexdigit())
            })
            .unwrap_or("#dddddd");
        out.push_str(&format!(
            "<div class=\"attachment\" style=\"border-color:{color}\">"
        ));
        if let Some(b) = a.get("blocks") {
            out.push_str(&mrkdwn::blocks_to_html(b, names));
        } else if let Some(t) = a.get("text").and_then(Value::as_str) {
            out.push_str(&mrkdwn::to_html(t, names));
        }
        out.push_str("</div>");
    }
    for title in &m.files {
        let file = files
            .iter()
            .find(|f| f.title == *title && f.channel_id == ch.id);
        match file {
            Some(f) if f.bytes.starts_with(b"\x89PNG") => out.push_str(&format!(
                "<img class=\"file\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
                html_escape(title),
                base64(&f.bytes)
            )),
            _ => out.push_str(&format!("<div>📎 {}</div>", html_escape(title))),
        }
    }
    out.push_str("</div></div>");
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_page_escapes_channel_text_and_fetches_nothing() {
        let ch = Channel {
            id: "C1".into(),
            name: "inc-1".into(),
            topic: "<script>x</script>".into(),
            members: vec![],
            messages: vec![Message {
                ts: "1764081240.000100".into(),
                user: "U1".into(),
                text: "hi &lt;img src=x onerror=alert(1)&gt; <https://e.example|link>".into(),
                blocks: None,
                attachments: None,
                thread_ts: None,
                edited: 0,
                files: vec![],
            }],
            pins: vec![],
            bookmarks: vec![],
            creator: "U1".into(),
            is_private: false,
            created: 0,
        };
        let names = |id: &str| id.to_lowercase();
        let html = page("demo", "intro", &[ch], &[], &[], &names);
        assert!(!html.contains("<script>x"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("<a href=\"https://e.example\""));
        assert!(!html.contains(" src=\"http"), "no external fetches");
        assert!(html.contains("<span class=\"who\">u1</span><span class=\"time\">14:34</span>"));
    }
}
