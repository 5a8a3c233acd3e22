//! Service containers a project's tests may need (from its compose files), one table
//! for every provider: image, environment and — where the provider health-checks
//! services itself — ports and health options.

/// A service container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Service {
    /// Name and host alias (`postgres`).
    pub name: &'static str,
    /// Image.
    pub image: &'static str,
    /// Environment of the service container (and, on container providers, of the job,
    /// so clients find the same credentials).
    pub env: Vec<(&'static str, &'static str)>,
    /// Port mappings (GitHub runs jobs on the host, so services publish ports).
    pub ports: Vec<&'static str>,
    /// Docker health options (GitHub waits for a healthy service before the steps).
    pub options: Option<&'static str>,
    /// The TCP port the service listens on (for `try`'s reachability check).
    pub port: u16,
}

const HEALTH_PG: &str =
    "--health-cmd pg_isready --health-interval 5s --health-timeout 5s --health-retries 10";

/// The service named `name` (as detection reports it), if CI can provide it.
pub fn service(name: &str) -> Option<Service> {
    Some(match name {
        "postgres" => Service {
            name: "postgres",
            image: "postgres:17",
            env: vec![
                ("POSTGRES_USER", "postgres"),
                ("POSTGRES_PASSWORD", "postgres"),
                ("POSTGRES_DB", "test"),
            ],
            ports: vec!["5432:5432"],
            options: Some(HEALTH_PG),
            port: 5432,
        },
        "redis" => Service {
            name: "redis",
            image: "redis:7",
            env: vec![],
            ports: vec!["6379:6379"],
            options: Some("--health-cmd \"redis-cli ping\" --health-interval 5s --health-timeout 5s --health-retries 10"),
            port: 6379,
        },
        "mysql" => Service {
            name: "mysql",
            image: "mysql:8.4",
            env: vec![("MYSQL_ROOT_PASSWORD", "root"), ("MYSQL_DATABASE", "test")],
            ports: vec!["3306:3306"],
            options: Some("--health-cmd \"mysqladmin ping -h 127.0.0.1\" --health-interval 5s --health-timeout 5s --health-retries 20"),
            port: 3306,
        },
        "mariadb" => Service {
            name: "mariadb",
            image: "mariadb:11",
            env: vec![
                ("MARIADB_ROOT_PASSWORD", "root"),
                ("MARIADB_DATABASE", "test"),
            ],
            ports: vec!["3306:3306"],
            options: None,
            port: 3306,
        },
        "mongo" => Service {
            name: "mongo",
            image: "mongo:7",
            env: vec![],
            ports: vec!["27017:27017"],
            options: None,
            port: 27017,
        },
        "rabbitmq" => Service {
            name: "rabbitmq",
            image: "rabbitmq:3",
            env: vec![],
            ports: vec!["5672:5672"],
            options: None,
            port: 5672,
        },
        "memcached" => Service {
            name: "memcached",
            image: "memcached:1.6",
            env: vec![],
            ports: vec!["11211:11211"],
            options: None,
            port: 11211,
        },
        _ => return None,
    })
}
