//! Every string the pages show, in Chinese (zh-CN) and English: one
//! table, so that no string exists in one language only.
//!
//! The language is the `?lang=` switch when a page is opened with it
//! (remembered in the `custody_lang` cookie), else the cookie, else the
//! browser's `Accept-Language`, else Chinese.

use axum::http::{header, HeaderMap};

/// A language the pages speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

/// The cookie that remembers the language switch.
pub const LANG_COOKIE: &str = "custody_lang";

impl Lang {
    /// The tag in `?lang=`, the cookie and `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language a tag names (`zh`, `zh-CN`, `zh-Hans`..., `en`,
    /// `en-US`...), case-insensitive.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (the switch link's target).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    pub fn t(self, text: Text) -> &'static str {
        let (en, zh) = text.pair();
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// The browser's preferred language among ours, by `Accept-Language`
/// quality (the first listed wins a tie).
pub fn from_accept_language(value: &str) -> Option<Lang> {
    let mut best: Option<(Lang, u32)> = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(Lang::from_tag) else {
            continue;
        };
        let quality = parts
            .find_map(|part| part.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let quality = (quality.clamp(0.0, 1.0) * 1000.0) as u32;
        if quality > 0 && best.is_none_or(|(_, seen)| quality > seen) {
            best = Some((lang, quality));
        }
    }
    best.map(|(lang, _)| lang)
}

/// The value of cookie `name` in a request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// The page's language: the switch, the cookie, the browser, Chinese.
pub fn negotiate(switch: Option<&str>, headers: &HeaderMap) -> Lang {
    switch
        .and_then(Lang::from_tag)
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::from_tag))
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
                .and_then(from_accept_language)
        })
        .unwrap_or(Lang::Zh)
}

macro_rules! texts {
    ($($name:ident => $en:literal, $zh:literal;)*) => {
        /// A string of the pages.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Text { $($name),* }

        impl Text {
            /// Every string, for the tests.
            pub const ALL: &'static [Text] = &[$(Text::$name),*];

            /// `(English, Chinese)`.
            pub fn pair(self) -> (&'static str, &'static str) {
                match self { $(Text::$name => ($en, $zh)),* }
            }
        }
    };
}

texts! {
    SiteTitle => "Archive custody", "档案保管链";
    SwitchLanguage => "中文", "English";
    HomeIntro => "Follow where government archives about you are kept, and audit the chain that records their custody.", "查询政府档案中与您相关记录的保管去向，审计记录保管过程的区块链。";
    CitizenLink => "Look up my records", "查询我的档案";
    AuditorLink => "Auditor pages", "审计页面";
    CitizenTitle => "Where are my records?", "我的档案在哪里？";
    CitizenIntro => "Enter the receipt code the service window gave you. You will see which departments hold or held your records, since when, their status and how many times each department read them. Titles and contents are never shown.", "请输入办事窗口给您的回执码。您将看到哪些部门保管或曾保管您的档案、自何时起、档案状态，以及各部门查阅的次数。页面不会显示档案标题或内容。";
    ReceiptCode => "Receipt code", "回执码";
    LookUp => "Look up", "查询";
    NothingFound => "Nothing found for this code. Check the code on your receipt; if it is right, no record carries it.", "未找到与此回执码相关的档案。请核对回执上的回执码；若无误，则没有档案使用此回执码。";
    RecordsFound => "Records found", "找到的档案";
    Record => "Record", "档案";
    HeldBy => "Held by", "保管部门";
    HeldLastBy => "Last held by", "最后保管部门";
    Since => "Since", "起始时间";
    Until => "Until", "截止时间";
    Status => "Status", "状态";
    StatusActive => "active", "保管中";
    StatusInTransfer => "in transfer", "移交中";
    StatusDisposed => "disposed", "已销毁";
    CustodyHistory => "Departments that held it", "曾保管的部门";
    Reads => "Reads", "查阅次数";
    NoReads => "No department has read it.", "尚无部门查阅。";
    Department => "Department", "部门";
    Count => "Times", "次数";
    Now => "now", "至今";
    RateLimited => "Too many lookups from your address. Try again in a minute.", "您的地址查询次数过多，请稍后一分钟再试。";
    TimesIn => "Times are shown in the time zone", "时间按以下时区显示";
    AuditorTitle => "Auditor pages", "审计页面";
    LoginNeeded => "These pages are for auditors. Run `custody audit login --node URL --key auditor.key` and open the link it prints.", "此页面仅供审计人员使用。请运行 `custody audit login --node URL --key auditor.key`，并打开其输出的链接。";
    LinkInvalid => "This login link was already used or has expired. Run `custody audit login` again.", "此登录链接已被使用或已过期。请重新运行 `custody audit login`。";
    SignedInAs => "Signed in as auditor", "已登录审计人员";
    Logout => "Log out", "退出登录";
    ChainStatus => "Chain status", "链状态";
    ChainId => "Chain", "链标识";
    Height => "Height", "区块高度";
    LastBlock => "Last block", "最新区块";
    LastBlockTime => "Last block time", "最新区块时间";
    ThisNode => "This node's department", "本节点所属部门";
    Validators => "Validators", "验证节点";
    Validator => "Validator", "验证节点";
    Power => "Voting power", "投票权";
    SignedRecent => "Recent certificates signed", "近期签署的证书";
    LastHeard => "Last heard", "最近通信";
    MsAgo => "ms ago", "毫秒前";
    Never => "never", "从未";
    RecentBlocks => "Recent blocks", "最近区块";
    Block => "Block", "区块";
    Time => "Time", "时间";
    Transactions => "Transactions", "交易数";
    Certificate => "Certificate", "提交证书";
    CertificateSigners => "signatures, round", "个签名，轮次";
    NoCertificate => "not yet stored", "尚未存储";
    DocumentHistory => "Document history", "档案历史";
    DocumentId => "Document id", "档案标识";
    Open => "Open", "打开";
    NoSuchDocument => "No document has this id.", "没有此标识的档案。";
    Event => "Event", "事件";
    Member => "Signed by", "签署人";
    Proof => "Inclusion proof", "包含证明";
    ProofChecked => "proof checked ✓", "证明已核验 ✓";
    ProofFailed => "proof FAILED ✗", "证明核验失败 ✗";
    AllProofsChecked => "Every event's inclusion proof was checked against its block.", "每个事件的包含证明均已对照其区块核验。";
    SomeProofsFailed => "Some events' inclusion proofs did not check: report this chain to its operators.", "部分事件的包含证明未通过核验：请向链的运营方报告。";
    Holdings => "Holdings per department", "各部门保管情况";
    DocumentsHeld => "Documents held", "保管档案数";
    Name => "Name", "名称";
    Flows => "Flows between departments", "部门间流转";
    FlowsIntro => "Documents one department handed to another: transfers the receiving department accepted, and offers it has not accepted yet (nor rejected, nor the sender cancelled).", "各部门移交给其他部门的档案：接收部门已接收的移交，以及接收部门尚未接收（也未拒绝、移出部门也未撤回）的移交。";
    NoFlows => "No document has moved between departments yet.", "尚无档案在部门之间移交。";
    FlowFrom => "From", "移出部门";
    FlowTo => "To", "接收部门";
    FlowHeld => "Held (transfers completed)", "已移交";
    FlowOffered => "Offered (pending)", "待接收";
    FlowsPartial => "Only the first documents in id order were counted: reading every document's history would hold this page too long. Documents counted", "仅统计了按标识排序的前一部分档案：读取全部档案的历史会使此页面等待过久。已统计的档案数";
    StoreError => "The node's store could not be read; try again, and tell the node's operator if it persists.", "无法读取节点存储；请重试，若问题持续请通知节点运营方。";
    Back => "Back", "返回";
    Alerts => "Oversight alerts", "监督告警";
    AlertsIntro => "Abnormal access the node's detector found in the committed chain, newest first. Each alert names its rule, the member and department responsible and the documents; the command custody audit anomalies lists the same alerts with their evidence and inclusion proofs, for checking offline.", "节点的检测器在已提交的链上发现的异常访问，最新的在前。每条告警列出规则、责任成员与部门及相关档案；命令 custody audit anomalies 列出同样的告警及其证据和包含证明，可离线核查。";
    NoAlerts => "No alerts: nothing abnormal was found.", "暂无告警：未发现异常。";
    AlertsShown => "Alerts shown", "显示的告警数";
    AlertsStarting => "The detector is still reading the chain; try again in a moment.", "检测器仍在读取链上记录，请稍后重试。";
    AlertsStopped => "The detector stopped; tell the node's operator.", "检测器已停止，请通知节点运营方。";
    Rule => "Rule", "规则";
    Responsible => "Member responsible", "责任成员";
    Score => "Score", "评分";
    Explanation => "Why", "原因";
    Documents => "Documents", "档案";
    VerifyExport => "Verify an export", "核验导出文件";
    VerifyIntro => "Upload a chain export written by custody chain export. This node verifies it from its genesis: every block's hash link and transaction root, every signature, every commit certificate against the validators in force, and it re-executes every transaction. Nothing uploaded is kept.", "上传由 custody chain export 生成的链导出文件。本节点从创世区块开始核验：每个区块的哈希链接和交易根、每个签名、每个提交证书（对照当时的验证节点），并重新执行每笔交易。上传的内容不会被保存。";
    ExportFile => "Chain export file", "链导出文件";
    GenesisFile => "Genesis file (optional; without it, this node's genesis)", "创世文件（可选；不提供则使用本节点的创世文件）";
    VerifyButton => "Verify", "核验";
    ExportVerified => "verified", "核验通过";
    ExportVerifiedDetail => "The export verifies from its genesis: every block, signature and certificate checked, every transaction re-executed.", "导出文件从创世区块起核验通过：所有区块、签名和提交证书均已核验，所有交易均已重新执行。";
    ExportFailed => "failed", "核验未通过";
    ExportFailedDetail => "The export does not verify. Do not rely on it; report it to whoever gave it to you.", "导出文件未通过核验。请勿依赖此文件，并向文件提供方报告。";
    AgainstGenesis => "Against genesis", "对照的创世区块";
    NodeGenesis => "this node's genesis", "本节点的创世文件";
    UploadedGenesis => "the uploaded genesis", "上传的创世文件";
    Blocks => "Blocks", "区块数";
    Certificates => "Commit certificates", "提交证书数";
    Signatures => "Signatures", "签名数";
    FinalHeight => "Final height", "最终高度";
    StateRoot => "State root", "状态根";
    ExportHash => "Export hash", "导出哈希";
    ThisNodesChain => "This node's chain", "与本节点链的比较";
    SameAsNode => "the same block at this height ✓", "该高度的区块与本节点一致 ✓";
    DiffersFromNode => "a different block at this height ✗", "该高度的区块与本节点不同 ✗";
    NodeBehind => "this node has not reached this height; its height is", "本节点尚未到达此高度，当前高度为";
    NodeUnread => "not compared: this node's store could not be read", "未比较：无法读取本节点存储";
    OtherChain => "not compared: another genesis than this node's", "未比较：创世区块与本节点不同";
    FailedAt => "Failed at height", "失败的区块高度";
    FailedCheck => "What failed", "未通过的检查";
    Reason => "Reason", "原因";
    CheckNotAnExport => "This file is not a chain export.", "此文件不是链导出文件。";
    CheckGenesis => "the export starts from another genesis", "导出文件始于另一个创世区块";
    CheckFraming => "the file is cut short or its blocks are out of order", "文件不完整或区块顺序错误";
    CheckChain => "a block or its commit certificate", "区块或其提交证书";
    CheckTrailer => "the trailer's counts or export hash", "文件尾的计数或导出哈希";
    UploadTooLarge => "The upload is too large for this node. Largest export it takes, in bytes", "上传文件超出本节点的限制。本节点接受的导出文件最大字节数";
    UploadUnreadable => "The upload could not be read; choose the file again and retry.", "无法读取上传的内容；请重新选择文件后重试。";
    NoExportChosen => "Choose an export file to verify.", "请选择要核验的导出文件。";
    GenesisUnreadable => "The genesis file is not a genesis (TOML or JSON as custody genesis writes it)", "创世文件无效（应为 custody genesis 生成的 TOML 或 JSON）";
    VerifyBusy => "Other exports are being verified; try again in a minute.", "其他导出文件正在核验中，请一分钟后再试。";
    CheckedAt => "Checked at", "核验时间";
    VerifyAnother => "Verify another export", "核验其他导出文件";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_chinese(text: &str) -> bool {
        text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    #[test]
    fn every_string_has_both_languages() {
        for text in Text::ALL {
            let (en, zh) = text.pair();
            assert!(!en.trim().is_empty(), "{text:?} has no English");
            assert!(!zh.trim().is_empty(), "{text:?} has no Chinese");
            if *text != Text::SwitchLanguage {
                assert!(has_chinese(zh), "{text:?}'s Chinese is not Chinese: {zh}");
                assert_ne!(en, zh, "{text:?} is not translated");
            }
        }
    }

    #[test]
    fn the_switch_overrides_the_cookie_and_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9".parse().unwrap());
        headers.insert(header::COOKIE, "custody_lang=en".parse().unwrap());
        assert_eq!(negotiate(Some("zh-CN"), &headers), Lang::Zh);
    }

    #[test]
    fn the_cookie_overrides_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, "en-US,en;q=0.9".parse().unwrap());
        headers.insert(header::COOKIE, "a=b; custody_lang=zh-CN".parse().unwrap());
        assert_eq!(negotiate(None, &headers), Lang::Zh);
    }

    #[test]
    fn the_browser_language_is_chosen_by_quality() {
        assert_eq!(
            from_accept_language("fr;q=1, en;q=0.5, zh-CN;q=0.8"),
            Some(Lang::Zh)
        );
        assert_eq!(from_accept_language("en-GB, zh;q=0.9"), Some(Lang::En));
        assert_eq!(from_accept_language("fr, de"), None);
    }

    #[test]
    fn without_any_preference_the_pages_speak_chinese() {
        assert_eq!(negotiate(None, &HeaderMap::new()), Lang::Zh);
        assert_eq!(negotiate(Some("xx"), &HeaderMap::new()), Lang::Zh);
    }
}
