//! trunkctl's routing commands as an operator uses them: the real binary against a real node
//! started in this process. Tenants, carriers and gateways through add/update/show/list/
//! remove, a rate deck imported, exported back byte for byte and routed through, and every
//! kind of mistake caught before anything is sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use trunkline_core::routing::format_micros;
mod support;

use support::{check, closed_port, json, start_node, trunkctl, trunkctl_with};

fn write_file(folder: &Path, name: &str, contents: &str) -> PathBuf {
    let path = folder.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn routing_usage_mistakes_exit_2_before_anything_is_sent() {
    // No node runs at this address: each mistake must be found before any I/O (a request
    // would fail with exit code 1 instead).
    let dead = closed_port();
    let run = |args: &[&str]| trunkctl_with(&dead, args);
    for (args, needle) in [
        (
            &["carrier", "add", "bad name"][..],
            "carrier name: \"bad name\" must be",
        ),
        (
            &["carrier", "add", "acme", "--capabilities", "t38,fax"],
            "--capabilities: \"fax\" is not a capability",
        ),
        (
            &["carrier", "add", "acme", "--strip-digits", "1", "--plus"],
            "--plus: ",
        ),
        (
            &["carrier", "add", "acme", "--final-codes", "503,200"],
            "--final-codes: 200 is not a SIP failure code",
        ),
        (
            &["carrier", "add", "acme", "--tech-prefix", "10a"],
            "--tech-prefix: ",
        ),
        (&["carrier", "update", "acme"], "nothing to change"),
        (
            &[
                "gateway",
                "add",
                "gw1",
                "--carrier",
                "acme",
                "--uri",
                "http://gw",
            ],
            "--uri: ",
        ),
        (
            &[
                "gateway",
                "add",
                "gw1",
                "--carrier",
                "acme",
                "--uri",
                "sip:gw.example.net",
                "--max-calls",
                "0",
            ],
            "--max-calls: must be at least 1",
        ),
        (
            &["gateway", "add", "gw1", "--uri", "sip:gw.example.net"],
            "--carrier",
        ),
        (
            &["gateway", "update", "gw1", "--enabled", "--disabled"],
            "--disabled",
        ),
        (&["gateway", "update", "gw1"], "nothing to change"),
        (&["gateway", "drain", "gw 1"], "gateway name: \"gw 1\""),
        (
            &["tenant", "add", "acme", "--strategy", "cheapest"],
            "--strategy",
        ),
        (
            &[
                "tenant",
                "add",
                "acme",
                "--country-code",
                "44",
                "--home-area-code",
                "212",
            ],
            "--home-area-code: ",
        ),
        (
            &["tenant", "add", "acme", "--country-code", "0x"],
            "--country-code: ",
        ),
        (
            &["tenant", "add", "acme", "--require", "hipaa"],
            "--require: \"hipaa\" is not a capability",
        ),
        (
            &["tenant", "add", "acme", "--allowed-carriers", "a,a"],
            "--allowed-carriers: ",
        ),
        (&["tenant", "update", "acme"], "nothing to change"),
        (&["tenant", "show", ""], "tenant name: \"\""),
        (
            &["route", "test", "4155550100", "--tenant", "a b"],
            "--tenant: \"a b\"",
        ),
        (
            &["route", "test", " ", "--tenant", "acme"],
            "NUMBER: is empty",
        ),
        (
            &[
                "rates",
                "import",
                "/nonexistent/deck.csv",
                "--carrier",
                "acme",
            ],
            "/nonexistent/deck.csv: can't open",
        ),
        (
            &["rates", "import", "deck.csv", "--carrier", "bad/name"],
            "--carrier: \"bad/name\"",
        ),
    ] {
        check(run(args), 2, &[], &[needle]);
    }
}

#[test]
fn a_deck_with_bad_rows_names_each_line_and_column_and_sends_nothing() {
    let dead = closed_port();
    let folder = tempfile::tempdir().unwrap();
    let deck = write_file(
        folder.path(),
        "deck.csv",
        "prefix,rate,description\n\
         44,0.0125,UK\n\
         45,-0.01,Denmark\n\
         +46,0.02,Sweden\n\
         44,0.013,UK again\n\
         47,0.0000001,Norway\n\
         48,\"0.01\"x,Poland\n",
    );
    let deck = deck.to_str().unwrap();
    check(
        trunkctl_with(&dead, &["rates", "import", deck, "--carrier", "acme"]),
        2,
        &[],
        &[
            &format!("{deck}:3: rate: \"-0.01\" is below zero"),
            &format!("{deck}:4: prefix: \"+46\" is not a prefix"),
            &format!("{deck}:5: prefix: 44 is already priced on line 2"),
            &format!("{deck}:6: rate: \"0.0000001\" has more than 6 decimal places"),
            &format!("{deck}:7: rate: text after the closing quote"),
            "5 bad rows; nothing was sent",
        ],
    );

    let header = write_file(folder.path(), "header.csv", "prefix,rat\n44,1\n");
    let header = header.to_str().unwrap();
    check(
        trunkctl_with(&dead, &["rates", "import", header, "--carrier", "acme"]),
        2,
        &[],
        &[&format!("{header}:1: unknown column \"rat\"")],
    );
    let missing = write_file(folder.path(), "missing.csv", "prefix,description\n44,x\n");
    let missing = missing.to_str().unwrap();
    check(
        trunkctl_with(&dead, &["rates", "import", missing, "--carrier", "acme"]),
        2,
        &[],
        &[&format!("{missing}:1: rate: missing column")],
    );
    let empty = write_file(folder.path(), "empty.csv", "prefix,rate\n");
    let empty = empty.to_str().unwrap();
    check(
        trunkctl_with(&dead, &["rates", "import", empty, "--carrier", "acme"]),
        2,
        &[],
        &["no rows under the header; nothing to import"],
    );
}

#[test]
fn tenants_carriers_and_gateways_round_trip_through_trunkctl() {
    let node = start_node();
    check(
        trunkctl(
            &node,
            &[
                "carrier",
                "add",
                "acme",
                "--capabilities",
                "tls,t38",
                "--plus",
                "--final-codes",
                "503",
            ],
        ),
        0,
        &["Carrier \"acme\" created (log index"],
        &[],
    );
    check(
        trunkctl(&node, &["carrier", "add", "acme"]),
        3,
        &[],
        &["carrier \"acme\" already exists; `trunkctl carrier update`"],
    );
    check(
        trunkctl(
            &node,
            &["carrier", "update", "acme", "--tech-prefix", "1010#"],
        ),
        0,
        &["Carrier \"acme\" updated"],
        &[],
    );
    check(
        trunkctl(&node, &["carrier", "show", "acme"]),
        0,
        &["1010#", "t38,tls", "503", "No gateways"],
        &[],
    );
    let carrier = json(&check(
        trunkctl(&node, &["-o", "json", "carrier", "show", "acme"]),
        0,
        &[],
        &[],
    ));
    assert_eq!(carrier["translation"]["tech_prefix"], "1010#");
    assert_eq!(carrier["translation"]["plus"], true, "update kept --plus");
    assert_eq!(carrier["final_codes"], serde_json::json!([503]));
    assert_eq!(carrier["enabled"], true);

    check(
        trunkctl(&node, &["carrier", "disable", "acme"]),
        0,
        &["Carrier \"acme\" disabled"],
        &[],
    );
    check(
        trunkctl(&node, &["carrier", "list"]),
        0,
        &["CARRIER", "acme", "disabled"],
        &[],
    );
    check(
        trunkctl(&node, &["carrier", "enable", "acme"]),
        0,
        &["enabled"],
        &[],
    );
    check(
        trunkctl(&node, &["carrier", "update", "nobody", "--plus"]),
        3,
        &[],
        &["carrier \"nobody\" not found"],
    );

    check(
        trunkctl(
            &node,
            &[
                "gateway",
                "add",
                "acme-1",
                "--carrier",
                "acme",
                "--uri",
                "sip:gw1.acme.example;transport=tcp",
                "--priority",
                "1",
                "--weight",
                "5",
                "--max-calls",
                "100",
            ],
        ),
        0,
        &["Gateway \"acme-1\" created"],
        &[],
    );
    check(
        trunkctl(&node, &["gateway", "update", "acme-1", "--weight", "7"]),
        0,
        &["updated"],
        &[],
    );
    check(
        trunkctl(&node, &["gateway", "drain", "acme-1"]),
        0,
        &["Gateway \"acme-1\" drained"],
        &[],
    );
    // An update leaves a drain alone.
    check(
        trunkctl(&node, &["gateway", "update", "acme-1", "--no-max-calls"]),
        0,
        &["updated"],
        &[],
    );
    let gateway = json(&check(
        trunkctl(&node, &["-o", "json", "gateway", "show", "acme-1"]),
        0,
        &[],
        &[],
    ));
    assert_eq!(gateway["weight"], 7);
    assert_eq!(gateway["priority"], 1, "update kept the priority");
    assert_eq!(gateway["uri"], "sip:gw1.acme.example;transport=tcp");
    assert_eq!(gateway["max_concurrent_calls"], serde_json::Value::Null);
    assert_eq!(gateway["drained"], true);
    check(
        trunkctl(&node, &["gateway", "undrain", "acme-1"]),
        0,
        &["undrained"],
        &[],
    );
    check(
        trunkctl(&node, &["gateway", "list", "--carrier", "acme"]),
        0,
        &["GATEWAY", "acme-1", "enabled", "no limit"],
        &[],
    );
    check(
        trunkctl(&node, &["carrier", "show", "acme"]),
        0,
        &["acme-1", "sip:gw1.acme.example;transport=tcp"],
        &[],
    );

    check(
        trunkctl(
            &node,
            &[
                "tenant",
                "add",
                "clinic",
                "--strategy",
                "priority",
                "--allowed-carriers",
                "acme",
                "--home-area-code",
                "415",
            ],
        ),
        0,
        &["Tenant \"clinic\" created"],
        &[],
    );
    check(
        trunkctl(
            &node,
            &["tenant", "update", "clinic", "--require", "tls,srtp"],
        ),
        0,
        &["Tenant \"clinic\" updated"],
        &[],
    );
    let tenant = json(&check(
        trunkctl(&node, &["-o", "json", "tenant", "show", "clinic"]),
        0,
        &[],
        &[],
    ));
    assert_eq!(tenant["strategy"], "priority", "update kept the strategy");
    assert_eq!(tenant["allowed_carriers"], serde_json::json!(["acme"]));
    assert_eq!(
        tenant["required_capabilities"],
        serde_json::json!(["tls", "srtp"])
    );
    assert_eq!(tenant["dial_plan"]["home_area_code"], "415");
    check(
        trunkctl(&node, &["tenant", "list"]),
        0,
        &["TENANT", "clinic", "priority", "415", "acme", "tls,srtp"],
        &[],
    );
    // A change of country resets the dial plan fields not given to that country's defaults.
    check(
        trunkctl(
            &node,
            &["tenant", "update", "clinic", "--country-code", "44"],
        ),
        0,
        &["updated"],
        &[],
    );
    let tenant = json(&check(
        trunkctl(&node, &["-o", "json", "tenant", "show", "clinic"]),
        0,
        &[],
        &[],
    ));
    assert_eq!(tenant["dial_plan"]["country_code"], "44");
    assert_eq!(tenant["dial_plan"]["international_prefix"], "00");
    assert_eq!(
        tenant["dial_plan"]["home_area_code"],
        serde_json::Value::Null
    );

    check(
        trunkctl(&node, &["tenant", "remove", "clinic"]),
        0,
        &["Tenant \"clinic\" removed"],
        &[],
    );
    check(
        trunkctl(&node, &["tenant", "show", "clinic"]),
        3,
        &[],
        &["tenant \"clinic\" not found"],
    );
    check(
        trunkctl(&node, &["gateway", "remove", "acme-1"]),
        0,
        &["removed"],
        &[],
    );
    check(
        trunkctl(&node, &["carrier", "remove", "acme"]),
        0,
        &["removed"],
        &[],
    );
    check(
        trunkctl(&node, &["-o", "json", "carrier", "list"]),
        0,
        &["[]"],
        &[],
    );
}

/// A deck in exactly the form `rates export` writes (canonical amounts and dates, every
/// column, sorted by prefix then start), big enough to take several chunks.
fn canonical_deck(synthetic_rows: usize) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("44".into(), "44,0.02,0,\"United Kingdom, fixed\",,".into()),
        (
            "4420".into(),
            "4420,0.0125,0.01,London,,2030-01-01T00:00:00Z".into(),
        ),
        (
            "4420~".into(),
            "4420,0.011,0,\"London \"\"new\"\" price\",2030-01-01T00:00:00Z,".into(),
        ),
        ("1".into(), "1,0.005,0,NANP,,".into()),
    ];
    for index in 0..synthetic_rows {
        let prefix = format!("9{index:06}");
        let rate = format_micros((index as u64 % 9_000 + 1) * 100);
        rows.push((prefix.clone(), format!("{prefix},{rate},0,,,")));
    }
    rows.sort();
    let mut deck =
        String::from("prefix,rate,connect_fee,description,effective_from,effective_until\n");
    for (_, row) in rows {
        deck.push_str(&row);
        deck.push('\n');
    }
    deck
}

/// Compares two decks line by line, showing the first difference (a whole deck would
/// drown the message).
fn assert_same_deck(actual: &str, expected: &str) {
    let mismatch = actual
        .lines()
        .zip(expected.lines())
        .enumerate()
        .find(|(_, (actual, expected))| actual != expected);
    if let Some((index, (actual, expected))) = mismatch {
        panic!(
            "line {}: exported {actual:?}, imported {expected:?}",
            index + 1
        );
    }
    assert_eq!(actual.lines().count(), expected.lines().count());
    assert_eq!(actual, expected);
}

#[test]
fn a_deck_imports_exports_identically_and_routes() {
    let node = start_node();
    let folder = tempfile::tempdir().unwrap();
    for (carrier, gateway, extra) in [
        ("cheap", "cheap-1", &["--plus"][..]),
        ("pricey", "pricey-1", &["--tech-prefix", "77#"][..]),
        ("faxonly", "faxonly-1", &["--capabilities", "t38"][..]),
    ] {
        let mut args = vec!["carrier", "add", carrier];
        args.extend_from_slice(extra);
        check(trunkctl(&node, &args), 0, &["created"], &[]);
        let uri = format!("sip:{gateway}.example.net");
        check(
            trunkctl(
                &node,
                &[
                    "gateway",
                    "add",
                    gateway,
                    "--carrier",
                    carrier,
                    "--uri",
                    &uri,
                ],
            ),
            0,
            &["created"],
            &[],
        );
    }
    check(
        trunkctl(
            &node,
            &["tenant", "add", "acme", "--strategy", "least-cost"],
        ),
        0,
        &["created"],
        &[],
    );

    let deck = canonical_deck(12_000);
    let deck_path = write_file(folder.path(), "cheap.csv", &deck);
    let imported = json(&check(
        trunkctl(
            &node,
            &[
                "-o",
                "json",
                "rates",
                "import",
                deck_path.to_str().unwrap(),
                "--carrier",
                "cheap",
                "--replace",
            ],
        ),
        0,
        &[],
        &[],
    ));
    assert_eq!(imported["rows"], 12_004);
    assert_eq!(imported["deck_rows"], 12_004);

    // Exported back byte for byte, to standard output and to a file.
    let exported = check(
        trunkctl(&node, &["rates", "export", "--carrier", "cheap"]),
        0,
        &[],
        &[],
    );
    assert_same_deck(&exported, &deck);
    let out_path = folder.path().join("out.csv");
    check(
        trunkctl(
            &node,
            &[
                "rates",
                "export",
                "--carrier",
                "cheap",
                "--output-file",
                out_path.to_str().unwrap(),
            ],
        ),
        0,
        &["Exported 12004 rows"],
        &[],
    );
    assert_same_deck(&std::fs::read_to_string(&out_path).unwrap(), &deck);

    let pricey = write_file(
        folder.path(),
        "pricey.csv",
        "Rate,Prefix\n0.03,44\n0.04,4420\n",
    );
    let imported = json(&check(
        trunkctl(
            &node,
            &[
                "-o",
                "json",
                "rates",
                "import",
                pricey.to_str().unwrap(),
                "--carrier",
                "pricey",
            ],
        ),
        0,
        &[],
        &[],
    ));
    let applied_index = imported["applied_index"].as_u64().unwrap().to_string();
    check(
        trunkctl(&node, &["carrier", "list"]),
        0,
        &["cheap", "12004", "pricey"],
        &[],
    );

    // Least cost: cheap (0.0125 for 4420 until 2030), then pricey; faxonly has no deck.
    check(
        trunkctl(
            &node,
            &[
                "route",
                "test",
                "011442071234567",
                "--tenant",
                "acme",
                "--min-index",
                &applied_index,
            ],
        ),
        0,
        &[
            "+442071234567",
            "international",
            "ORDER",
            "cheap-1",
            "sip:cheap-1.example.net",
            "+442071234567",
            "77#442071234567",
            "0.0125",
            "0.04",
            "Why:",
            "kept",
            "rank 1",
            "dropped",
            "no matching prefix",
        ],
        &[],
    );
    let routed = json(&check(
        trunkctl(
            &node,
            &[
                "-o",
                "json",
                "route",
                "test",
                "+442071234567",
                "--tenant",
                "acme",
            ],
        ),
        0,
        &[],
        &[],
    ));
    assert_eq!(routed["normalized"], "+442071234567");
    assert_eq!(routed["destination_class"], "international");
    assert_eq!(routed["legs"][0]["carrier"], "cheap");
    assert_eq!(routed["legs"][0]["prefix"], "4420");
    assert_eq!(routed["legs"][0]["rate_micros_per_minute"], 12_500);
    assert_eq!(routed["legs"][1]["carrier"], "pricey");
    assert!(routed["refusal"].is_null());
    assert!(!routed["explanation"].as_array().unwrap().is_empty());

    // A fax call needs T.38: only faxonly has it, and it has no prefix for the number.
    check(
        trunkctl(
            &node,
            &[
                "route",
                "test",
                "+442071234567",
                "--tenant",
                "acme",
                "--fax",
            ],
        ),
        3,
        &["Refused", "lacks capability t38"],
        &["no route for +442071234567"],
    );
    check(
        trunkctl(
            &node,
            &["route", "test", "+81312345678", "--tenant", "acme"],
        ),
        3,
        &["Refused", "no matching prefix"],
        &["no route"],
    );
    check(
        trunkctl(
            &node,
            &["route", "test", "+442071234567", "--tenant", "nobody"],
        ),
        1,
        &[],
        &["NOT_FOUND"],
    );
    check(
        trunkctl(&node, &["route", "test", "+44x", "--tenant", "acme"]),
        1,
        &[],
        &["INVALID_ARGUMENT"],
    );

    // --replace swaps the whole deck; a deck for an unknown carrier changes nothing.
    let small = write_file(folder.path(), "small.csv", "prefix,rate\n44,0.019\n");
    check(
        trunkctl(
            &node,
            &[
                "rates",
                "import",
                small.to_str().unwrap(),
                "--carrier",
                "cheap",
                "--replace",
            ],
        ),
        0,
        &["Imported 1 rows", "the deck has 1 rows"],
        &[],
    );
    check(
        trunkctl(&node, &["rates", "export", "--carrier", "cheap"]),
        0,
        &["44,0.019,0,,,"],
        &[],
    );
    check(
        trunkctl(
            &node,
            &[
                "rates",
                "import",
                small.to_str().unwrap(),
                "--carrier",
                "nobody",
            ],
        ),
        1,
        &[],
        &["nobody"],
    );
    check(
        trunkctl(&node, &["rates", "export", "--carrier", "nobody"]),
        1,
        &[],
        &["NOT_FOUND"],
    );
}
