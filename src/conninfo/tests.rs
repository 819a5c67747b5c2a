use super::*;
use std::os::unix::fs::PermissionsExt;
use tokio_postgres::config::{Host, SslMode as TokioSsl};

/// Resolves against a fake environment: `USER=alice` plus `vars`
/// (`"K=V K=V"`), no `HOME`, no /var/run/postgresql.
fn resolve(args: &ConnArgs, vars: &str) -> Result<ConnParams, ConnInfoError> {
    let vars = format!("USER=alice {vars}");
    let m: HashMap<&str, &str> = vars
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    ConnParams::resolve_with(args, &|k: &str| m.get(k).map(|v| v.to_string()), false)
}

fn d(dbname: &str) -> ConnArgs {
    ConnArgs {
        dbname: Some(dbname.into()),
        ..ConnArgs::default()
    }
}

/// Display plus every non-default field, the password in clear.
fn show(args: &ConnArgs, vars: &str) -> String {
    let p = resolve(args, vars).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut s = p.to_string();
    let extra = [
        ("password", p.password.clone()),
        (
            "application_name",
            Some(p.application_name).filter(|a| a != "pgstream"),
        ),
        (
            "connect_timeout",
            p.connect_timeout.map(|t| t.as_secs().to_string()),
        ),
        (
            "sslmode",
            Some(p.sslmode.to_string()).filter(|m| m != "prefer"),
        ),
        ("sslrootcert", p.sslrootcert),
        ("sslcert", p.sslcert),
        ("sslkey", p.sslkey),
    ];
    for (k, v) in extra.into_iter().filter_map(|(k, v)| Some((k, v?))) {
        s += &format!(" {k}={}", Quoted(&v));
    }
    s
}

/// `show` for `-d dbname` with the environment `vars`, the host dropped
/// when it is the default: the shape of the test tables below.
fn check(cases: &[(&str, &str, &str)]) {
    for (dbname, vars, want) in cases {
        let got = show(&d(dbname), vars);
        assert_eq!(
            got.strip_prefix("host=localhost ").unwrap_or(&got),
            *want,
            "{dbname}"
        );
    }
}

#[test]
fn plain_name_and_defaults() {
    #[rustfmt::skip]
        check(&[
            ("", "", "port=5432 user=alice dbname=alice"),
            ("shop", "", "port=5432 user=alice dbname=shop"),
            ("", "USER= LOGNAME=carol", "port=5432 user=carol dbname=carol"),
        ]);
    let user_bob = |k: &str| (k == "USER").then(|| "bob".to_string());
    let p = ConnParams::resolve_with(&d("shop"), &user_bob, true).unwrap();
    assert_eq!(
        p.to_string(),
        "host=/var/run/postgresql port=5432 user=bob dbname=shop"
    );
    assert!(ConnParams::resolve(&d("shop"), &user_bob).is_ok());
    let nobody = ConnParams::resolve_with(&d("shop"), &|_: &str| None, false);
    assert_eq!(nobody.unwrap_err(), ConnInfoError::NoUser);
}

#[test]
fn conninfo_strings() {
    #[rustfmt::skip]
        check(&[
            (r"host = db1  port= 6543 dbname ='my db' user=o\'neil password='p\'w\\d'", "",
             r"host=db1 port=6543 user='o\'neil' dbname='my db' password='p\'w\\d'"),
            ("hostaddr=10.0.0.1 application_name=''", "", "host=10.0.0.1 port=5432 user=alice dbname=alice"),
            ("fallback_application_name=fb", "", "port=5432 user=alice dbname=alice application_name=fb"),
            ("fallback_application_name=fb application_name=a", "", "port=5432 user=alice dbname=alice application_name=a"),
            ("connect_timeout=1 options='' keepalives=1", "", "port=5432 user=alice dbname=alice connect_timeout=2"),
            ("connect_timeout=-1 sslmode=verify-full", "", "port=5432 user=alice dbname=alice sslmode=verify-full"),
            ("sslrootcert=/ca sslcert=/c sslkey=/k", "", "port=5432 user=alice dbname=alice sslrootcert=/ca sslcert=/c sslkey=/k"),
        ]);
}

#[test]
fn uris() {
    #[rustfmt::skip]
        check(&[
            ("postgresql://bob:s%40cret@db.example:6000/shop", "", "host=db.example port=6000 user=bob dbname=shop password=s@cret"),
            ("postgres://[::1]:5433/x", "", "host=::1 port=5433 user=alice dbname=x"),
            ("postgres://[fe80::1%25eth0]", "", "host=fe80::1%eth0 port=5432 user=alice dbname=alice"),
            ("postgresql://%2Fvar%2Frun%2Fpostgresql/db", "", "host=/var/run/postgresql port=5432 user=alice dbname=db"),
            ("postgresql://h/db?host=/tmp&application_name=a%20b", "", "host=/tmp port=5432 user=alice dbname=db application_name='a b'"),
            ("postgresql://h?sslmode=disable&ssl=true", "", "host=h port=5432 user=alice dbname=alice sslmode=require"),
            ("postgresql://carol@", "PGHOST=envhost", "host=envhost port=5432 user=carol dbname=carol"),
            ("postgresql://", "", "port=5432 user=alice dbname=alice"),
            ("postgresql://:7000", "", "port=7000 user=alice dbname=alice"),
        ]);
    assert_eq!(
        resolve(&d("postgresql:///db"), "").unwrap().socket_path(),
        None
    );
    let p = resolve(&d("postgresql://%2Ftmp:5499"), "").unwrap();
    assert_eq!(p.socket_path().unwrap(), Path::new("/tmp/.s.PGSQL.5499"));
}

#[test]
fn precedence() {
    // psql's order: a conninfo/URI -d, then flags, then PG* variables.
    let vars = "PGHOST=envhost PGPORT=2222 PGUSER=envuser PGDATABASE=envdb PGPASSWORD=envpw";
    let flags = |dbname: &str| ConnArgs {
        host: Some("flaghost".into()),
        port: Some("1111".into()),
        username: Some("flaguser".into()),
        ..d(dbname)
    };
    #[rustfmt::skip]
        let cases = [
            (d(""), "host=envhost port=2222 user=envuser dbname=envdb password=envpw"),
            (flags("flagdb"), "host=flaghost port=1111 user=flaguser dbname=flagdb password=envpw"),
            (flags("host=ci port=3 password=pw"), "host=ci port=3 user=flaguser dbname=envdb password=pw"),
            (flags("postgresql://ciuser@/cidb"), "host=flaghost port=1111 user=ciuser dbname=cidb password=envpw"),
        ];
    for (args, want) in cases {
        assert_eq!(show(&args, vars), want);
    }
    // A value that is overridden is never validated.
    let args = ConnArgs {
        port: Some("bad".into()),
        ..d("port=3")
    };
    assert_eq!(resolve(&args, "PGPORT=worse").unwrap().port, 3);
}

#[test]
fn each_env_var() {
    let vars = "PGHOST=/sock PGPORT=5499 PGDATABASE=db PGUSER=u PGPASSWORD=pw PGSSLMODE=verify-ca \
                    PGSSLROOTCERT=/ca PGSSLCERT=/c PGSSLKEY=/k PGAPPNAME=app PGCONNECT_TIMEOUT=7";
    let want = "host=/sock port=5499 user=u dbname=db password=pw application_name=app \
                    connect_timeout=7 sslmode=verify-ca sslrootcert=/ca sslcert=/c sslkey=/k";
    assert_eq!(show(&d(""), vars), want);
    let f = PassFile::new("*:*:*:*:fromfile\n", 0o600);
    let p = resolve(&d(""), &format!("PGPASSFILE={}", f.path())).unwrap();
    assert_eq!(p.password.as_deref(), Some("fromfile"));
}

#[test]
fn bad_input() {
    #[rustfmt::skip]
        let cases = [
            ("foo=1", r#"invalid connection option "foo""#),
            ("service=x", r#"unsupported connection option "service": pgstream does not implement it; remove it"#),
            ("channel_binding=sometimes", r#"invalid channel_binding "sometimes""#),
            ("port=abc", r#"invalid port "abc""#),
            ("port=0", r#"invalid port "0""#),
            ("port=70000", r#"invalid port "70000""#),
            ("host=x port", r#"missing "=" after "port" in connection info string"#),
            ("host 'x' port=1", r#"missing "=" after "host" in connection info string"#),
            ("password='secret", "unterminated quoted string in connection info string"),
            ("sslmode=x", r#"invalid sslmode "x""#),
            ("connect_timeout=soon", r#"invalid connect_timeout "soon""#),
            ("host=a,b,c port=1,2", "could not match 2 port numbers to 3 hosts"),
            ("host=a,b port=1,x", r#"invalid port "x""#),
            ("target_session_attrs=master", r#"invalid target_session_attrs "master""#),
            ("load_balance_hosts=yes", r#"invalid load_balance_hosts "yes""#),
            ("postgresql://[::1/db", r#"invalid URI: missing "]" after IPv6 host address"#),
            ("postgresql://[::1]x/db", r#"invalid URI: unexpected character "x" after the host"#),
            ("postgresql://h/db?sslmode", r#"invalid URI: missing "=" in query parameter "sslmode""#),
            ("postgresql://h/db?bogus=1", r#"invalid connection option "bogus""#),
            ("postgresql://u:p%zzsecret@h/db", "invalid URI: invalid percent-encoding in the password"),
            ("postgresql://h/db%00", "invalid URI: invalid percent-encoding in the database name"),
        ];
    for (dbname, want) in cases {
        assert_eq!(resolve(&d(dbname), "").unwrap_err().to_string(), want);
    }
    let err = resolve(&d(""), "PGHOST=a,b,c PGPORT=1,2").unwrap_err();
    assert_eq!(err, ConnInfoError::PortCount { ports: 2, hosts: 3 });
}

/// Host lists in each form libpq takes them, with the server-kind settings.
#[test]
fn host_lists() {
    let hosts = |dbname: &str, vars: &str| {
        let p = resolve(&d(dbname), vars).unwrap_or_else(|e| panic!("{dbname}: {e}"));
        let list: Vec<String> = p.hosts.iter().map(|e| e.to_string()).collect();
        (list.join(" "), p.target_session_attrs, p.load_balance)
    };
    use SessionAttrs::*;
    assert_eq!(
        hosts("host=a,b port=1,2 target_session_attrs=read-write", ""),
        ("a:1 b:2".into(), ReadWrite, false)
    );
    assert_eq!(
        hosts(
            "postgresql://a:1,b,[::1]:3/db?load_balance_hosts=random",
            ""
        ),
        ("a:1 b:5432 [::1]:3".into(), Any, true)
    );
    assert_eq!(
        hosts(
            "dbname=x",
            "PGHOST=a,/tmp PGPORT=7 PGTARGETSESSIONATTRS=prefer-standby"
        ),
        ("a:7 /tmp (port 7)".into(), PreferStandby, false)
    );
    assert_eq!(
        hosts(
            "host=a,b target_session_attrs=standby",
            "PGTARGETSESSIONATTRS=primary PGLOADBALANCEHOSTS=random"
        ),
        ("a:5432 b:5432".into(), Standby, true)
    );
    // The first server is the one the parameters name.
    let p = resolve(&d("host=a,b port=1,2"), "").unwrap();
    assert_eq!((p.host.as_str(), p.port), ("a", 1));
    let b = p.at(&p.hosts[1]);
    assert_eq!((b.host.as_str(), b.port), ("b", 2));
}

/// The password file is read for each host of a list.
#[test]
fn password_file_per_host() {
    let f = PassFile::new("a:1:*:*:pa\nb:2:*:*:pb\n", 0o600);
    let path = f.0.display().to_string();
    let p = resolve(&d(&format!("host=a,b port=1,2 passfile={path}")), "").unwrap();
    assert_eq!(p.password.as_deref(), Some("pa"));
    assert_eq!(p.at(&p.hosts[1]).password.as_deref(), Some("pb"));
    // A password given applies to every host.
    let p = resolve(
        &d(&format!("host=a,b port=1,2 passfile={path} password=x")),
        "",
    )
    .unwrap();
    assert_eq!(p.at(&p.hosts[1]).password.as_deref(), Some("x"));
}

/// A file with the given mode, removed on drop.
struct PassFile(PathBuf);

impl PassFile {
    fn new(text: &str, mode: u32) -> PassFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("pgstream-pgpass-{}-{n}", std::process::id());
        PassFile::at(std::env::temp_dir().join(name), text, mode)
    }
    fn at(path: PathBuf, text: &str, mode: u32) -> PassFile {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        PassFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for PassFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn pgpass() {
    let text = "# comment\n\
                    db1:5432:shop:alice:first\n\
                    db1:5432:shop:alice:second\n\
                    db1:*:*:alice:wild\n\
                    h\\:x:5432:d\\\\b:alice:p\\:w\\\\d:tail\n\
                    localhost:5432:sock:alice:local\n\
                    short:line\n\
                    \\*:5432:star:alice:literal\n";
    let (private, shared) = (PassFile::new(text, 0o600), PassFile::new(text, 0o644));
    let lookup = |f: &PassFile, dbname: &str| {
        resolve(&d(dbname), &format!("PGPASSFILE={}", f.path()))
            .unwrap()
            .password
    };
    #[rustfmt::skip]
        let cases = [
            ("host=db1 dbname=shop", Some("first")),
            ("host=db1 dbname=other port=9", Some("wild")),
            (r"host=h:x dbname=d\\b", Some(r"p:w\d")),
            ("host=/tmp dbname=sock", Some("local")),
            ("host=db2 dbname=shop", None),
            ("host=db1 dbname=shop user=bob", None),
            ("host=any dbname=star", None),
            ("host=* dbname=star", Some("literal")),
            ("host=db1 dbname=shop password=given", Some("given")),
        ];
    for (dbname, want) in cases {
        assert_eq!(lookup(&private, dbname).as_deref(), want, "{dbname}");
    }
    // Group or world access: ignored, with a warning.
    assert_eq!(lookup(&shared, "host=db1 dbname=shop"), None);
    std::fs::set_permissions(&shared.0, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(lookup(&shared, "host=db1 dbname=shop"), None);
    // `passfile` beats PGPASSFILE; a missing file is skipped silently.
    let key = format!("host=db1 dbname=shop passfile={}", private.path());
    assert_eq!(lookup(&shared, &key).as_deref(), Some("first"));
    assert_eq!(
        lookup(&PassFile(PathBuf::from("/nonexistent/x")), "host=db1"),
        None
    );
    // $HOME/.pgpass by default.
    let home = std::env::temp_dir().join(format!("pgstream-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let f = PassFile::at(home.join(".pgpass"), "*:*:*:*:fromhome\n", 0o600);
    let p = resolve(&d(""), &format!("HOME={}", home.display())).unwrap();
    assert_eq!(p.password.as_deref(), Some("fromhome"));
    drop(f);
    std::fs::remove_dir(&home).unwrap();
}

#[test]
fn password_never_shown() {
    let p = resolve(&d("postgresql://u:hunter2@h/db"), "").unwrap();
    let shown = format!("{p:?} {p} {p:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains(r#"password: Some("********")"#));
    assert!(!format!("{:?}", d("password=hunter2")).contains("hunter2"));
    let e = resolve(&d("password='hunter2"), "").unwrap_err();
    assert!(!format!("{e} {e:?}").contains("hunter2"));
}

#[test]
fn ssl_defaults() {
    // Certificate files default to $HOME/.postgresql/, like libpq.
    let p = resolve(&d("host=h"), "HOME=/home/al").unwrap();
    assert_eq!(
        p.sslrootcert.as_deref(),
        Some("/home/al/.postgresql/root.crt")
    );
    assert_eq!(
        p.sslcert.as_deref(),
        Some("/home/al/.postgresql/postgresql.crt")
    );
    assert_eq!(
        p.sslkey.as_deref(),
        Some("/home/al/.postgresql/postgresql.key")
    );
    let p = resolve(&d("host=h sslrootcert=/ca"), "HOME=/home/al PGSSLKEY=/k").unwrap();
    assert_eq!(
        (p.sslrootcert.as_deref(), p.sslkey.as_deref()),
        (Some("/ca"), Some("/k"))
    );
    // sslrootcert=system means verify-full, and nothing weaker.
    #[rustfmt::skip]
        check(&[
            ("sslrootcert=system", "", "port=5432 user=alice dbname=alice sslmode=verify-full sslrootcert=system"),
            ("sslrootcert=system sslmode=verify-full", "", "port=5432 user=alice dbname=alice sslmode=verify-full sslrootcert=system"),
        ]);
    for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
        let e = resolve(&d(&format!("sslrootcert=system sslmode={mode}")), "").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                r#"weak sslmode "{mode}" may not be used with sslrootcert=system (use "verify-full")"#
            )
        );
    }
}

#[test]
fn tokio_config() {
    let socket =
        "host=/tmp port=5499 user=u dbname=db password=pw connect_timeout=5 sslmode=require";
    let c = resolve(&d(socket), "").unwrap().to_tokio_config();
    assert_eq!(c.get_hosts(), [Host::Unix("/tmp".into())]);
    assert_eq!(c.get_ports(), [5499]);
    assert_eq!((c.get_user(), c.get_dbname()), (Some("u"), Some("db")));
    assert_eq!(c.get_password(), Some(&b"pw"[..]));
    assert_eq!(c.get_application_name(), Some("pgstream"));
    assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(5)));
    assert_eq!(c.get_ssl_mode(), TokioSsl::Disable);
    let c = resolve(&d("host=db.example sslmode=verify-full"), "")
        .unwrap()
        .to_tokio_config();
    assert_eq!(c.get_hosts(), [Host::Tcp("db.example".into())]);
    assert_eq!((c.get_password(), c.get_connect_timeout()), (None, None));
    assert_eq!(c.get_ssl_mode(), TokioSsl::Require);
}

#[test]
fn settings_that_would_change_the_connection_are_refused() {
    #[rustfmt::skip]
    let refused = [
        "options='-c search_path=x'", "client_encoding=LATIN1", "gssencmode=require",
        "sslnegotiation=direct", "sslcertmode=disable", "sslcertmode=require", "sslsni=0",
        "ssl_min_protocol_version=TLSv1.3", "ssl_max_protocol_version=TLSv1.2",
        "min_protocol_version=3.2", "require_auth=scram-sha-256", "sslcrl=/crl", "sslcrldir=/d",
        "requirepeer=postgres", "servicefile=/f", "postgresql://h/db?sslnegotiation=direct",
    ];
    for conninfo in refused {
        let e = resolve(&d(conninfo), "").unwrap_err();
        assert!(
            matches!(e, ConnInfoError::Unsupported(..)),
            "{conninfo}: {e:?}"
        );
        let key = conninfo.trim_start_matches("postgresql://h/db?");
        let key = key.split('=').next().unwrap();
        assert!(e.to_string().contains(key), "{conninfo}: {e}");
    }
    #[rustfmt::skip]
    let harmless = [
        "client_encoding=UTF8", "target_session_attrs=any", "load_balance_hosts=disable",
        "target_session_attrs=read-write", "load_balance_hosts=random",
        "gssencmode=prefer", "gssencmode=disable", "sslnegotiation=postgres", "sslcertmode=allow",
        "sslsni=1", "ssl_min_protocol_version=TLSv1.2", "ssl_max_protocol_version=TLSv1.3",
        "min_protocol_version=3.0", "max_protocol_version=latest", "krbsrvname=pg",
        "sslcompression=1", "replication=database", "service=''",
    ];
    for conninfo in harmless {
        assert!(resolve(&d(conninfo), "").is_ok(), "{conninfo}");
    }
}

#[test]
fn refused_environment_variables_are_named() {
    #[rustfmt::skip]
    let cases = [
        ("PGSERVICE=x", "unsupported environment variable PGSERVICE (service): pgstream does not implement it; unset it"),
        ("PGREQUIREAUTH=scram-sha-256", "unsupported environment variable PGREQUIREAUTH (require_auth): pgstream does not implement it; unset it"),
        ("PGSSLCRL=/crl", "unsupported environment variable PGSSLCRL (sslcrl): pgstream does not implement it; unset it"),
        ("PGOPTIONS=-cx=y", "unsupported environment variable PGOPTIONS (options=-cx=y): pgstream pins its session settings; unset it"),
        ("PGTZ=UTC", "unsupported environment variable PGTZ (tz): pgstream pins its session settings; unset it"),
        ("PGGSSENCMODE=require", "unsupported environment variable PGGSSENCMODE (gssencmode=require): pgstream does not implement it; unset it"),
        ("PGCHANNELBINDING=maybe", r#"invalid channel_binding "maybe""#),
    ];
    for (vars, want) in cases {
        assert_eq!(resolve(&d(""), vars).unwrap_err().to_string(), want);
    }
    // Harmless values, variables that only locate files pgstream never
    // reads, and empty ones pass.
    let ok = "PGTARGETSESSIONATTRS=any PGGSSENCMODE=prefer PGCLIENTENCODING=utf8 PGSSLSNI=1 \
              PGSYSCONFDIR=/etc/pg PGLOCALEDIR=/l PGSERVICE= PGTZ=";
    assert!(resolve(&d(""), ok).is_ok());
}

#[test]
fn channel_binding_and_hostaddr() {
    let binding = |args: &ConnArgs, vars: &str| resolve(args, vars).map(|p| p.channel_binding);
    assert_eq!(binding(&d(""), ""), Ok(ChannelBinding::Prefer));
    assert_eq!(
        binding(&d(""), "PGCHANNELBINDING=disable"),
        Ok(ChannelBinding::Disable)
    );
    assert_eq!(
        binding(&d("channel_binding=require"), "PGCHANNELBINDING=disable"),
        Ok(ChannelBinding::Require)
    );
    for (conninfo, vars) in [
        ("channel_binding=require sslmode=disable", ""),
        ("host=/tmp", "PGCHANNELBINDING=require"),
    ] {
        let e = resolve(&d(conninfo), vars).unwrap_err();
        assert!(matches!(e, ConnInfoError::BindingWithoutTls(_)), "{e:?}");
    }
    let c = resolve(&d("channel_binding=require"), "")
        .unwrap()
        .to_tokio_config();
    assert_eq!(
        c.get_channel_binding(),
        tokio_postgres::config::ChannelBinding::Require
    );
    let host = |args: &ConnArgs, vars: &str| resolve(args, vars).map(|p| p.host);
    assert_eq!(host(&d(""), "PGHOSTADDR=10.0.0.2"), Ok("10.0.0.2".into()));
    assert_eq!(
        host(&d("hostaddr=10.0.0.3 host=10.0.0.3"), ""),
        Ok("10.0.0.3".into())
    );
    let e = host(&d(""), "PGHOST=db PGHOSTADDR=10.0.0.2").unwrap_err();
    assert!(e.to_string().contains("hostaddr"), "{e}");
}
