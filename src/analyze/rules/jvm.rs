//! The JVM: Maven (pom.xml, modules, mvnw), Gradle (Groovy and Kotlin DSL, settings
//! includes, gradlew), sbt; Java or Kotlin; the Java version from toolchains, release or
//! source compatibility; Spring Boot.

use super::{rule, Ctx, Draft, Ecosystem, Rule};
use crate::analyze::stack::{Framework, Language, PackageManager, TestTool};

rule!(MAVEN_POM, "jvm/maven", "pom.xml marks a Maven project");
rule!(
    GRADLE_BUILD,
    "jvm/gradle",
    "build.gradle(.kts) or settings.gradle(.kts) marks a Gradle project"
);
rule!(
    WRAPPER,
    "jvm/wrapper",
    "mvnw/gradlew present: use the wrapper the project pins"
);
rule!(
    KOTLIN,
    "jvm/kotlin",
    "Kotlin plugin or sources: language kotlin"
);
rule!(
    JAVA_VERSION,
    "jvm/java-version",
    "toolchain, release or source compatibility declares Java"
);
rule!(
    SPRING_BOOT,
    "jvm/spring-boot",
    "the Spring Boot parent, plugin or starter: spring-boot"
);
rule!(
    SPOTLESS,
    "jvm/spotless",
    "the Spotless plugin: check formatting with it"
);
rule!(SBT_BUILD, "scala/sbt", "build.sbt marks an sbt project");
pub(crate) static RULES: &[&Rule] = &[
    &MAVEN_POM,
    &GRADLE_BUILD,
    &WRAPPER,
    &KOTLIN,
    &JAVA_VERSION,
    &SPRING_BOOT,
    &SPOTLESS,
    &SBT_BUILD,
];

const GRADLE_FILES: &[&str] = &[
    "build.gradle.kts",
    "build.gradle",
    "settings.gradle.kts",
    "settings.gradle",
];

pub(crate) static MAVEN: Ecosystem = Ecosystem {
    name: "maven",
    markers: &["pom.xml"],
    marker_suffixes: &[],
    reads: &["pom.xml"],
    is_root: |c| c.has("pom.xml"),
    detect: detect_maven,
    members: |c| xml_values(c.text("pom.xml").unwrap_or(""), "module", &mut |_| {}),
};

pub(crate) static GRADLE: Ecosystem = Ecosystem {
    name: "gradle",
    markers: GRADLE_FILES,
    marker_suffixes: &[],
    reads: &[
        "build.gradle.kts",
        "build.gradle",
        "settings.gradle.kts",
        "settings.gradle",
        "gradle/libs.versions.toml",
    ],
    // A repository offering both builds (spring-petclinic) is built one way: Maven's.
    is_root: |c| GRADLE_FILES.iter().any(|f| c.has(f)) && !c.has("pom.xml"),
    detect: detect_gradle,
    // Everything under a settings file is one build.
    members: |c| {
        if c.has("settings.gradle") || c.has("settings.gradle.kts") {
            vec!["**".to_owned()]
        } else {
            Vec::new()
        }
    },
};

pub(crate) static SBT: Ecosystem = Ecosystem {
    name: "sbt",
    markers: &["build.sbt"],
    marker_suffixes: &[],
    reads: &["build.sbt", "project/build.properties"],
    is_root: |c| c.has("build.sbt"),
    detect: detect_sbt,
    members: |_| vec!["**".to_owned()],
};

/// Text of every `<tag>` element (quick-xml, streaming: no recursion, no entity expansion).
fn xml_values(text: &str, tag: &str, warn: &mut dyn FnMut(String)) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut out = Vec::new();
    let mut inside = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => inside = e.local_name().as_ref() == tag.as_bytes(),
            Ok(Event::Text(t)) if inside => {
                if let Ok(s) = t.unescape() {
                    out.push(s.trim().to_owned());
                }
            }
            Ok(Event::End(_)) => inside = false,
            Ok(Event::Eof) => break,
            Err(e) => {
                warn(format!(
                    "invalid XML at byte {}: {e}",
                    reader.buffer_position()
                ));
                break;
            }
            _ => {}
        }
    }
    out
}

fn detect_maven(c: &Ctx) -> Draft {
    let pom_path = c.path("pom.xml");
    let pom = c.text("pom.xml").unwrap_or("");
    let mut malformed = false;
    let mut warn = |m: String| {
        malformed = true;
        c.warn(format!("{pom_path}: {m}; detection is best-effort"));
    };
    let artifacts = xml_values(pom, "artifactId", &mut warn);
    let mut versions: Vec<String> = Vec::new();
    for tag in [
        "maven.compiler.release",
        "release",
        "java.version",
        "maven.compiler.source",
        "maven.compiler.target",
    ] {
        versions.extend(xml_values(pom, tag, &mut |_| {}));
    }
    let kotlin = artifacts.iter().any(|a| a == "kotlin-maven-plugin")
        || c.tree.under(c.dir).any(|p| p.contains("src/main/kotlin/"));
    let mut d = Draft::new(
        if kotlin {
            Language::Kotlin
        } else {
            Language::Java
        },
        if malformed { 0.5 } else { 0.9 },
    );
    d.package_manager = Some(PackageManager::Maven);
    d.test_tool = Some(TestTool::JunitMaven);
    d.because(&MAVEN_POM, &pom_path, "Maven project");
    if kotlin {
        d.because(&KOTLIN, &pom_path, "language kotlin");
    }
    let mvn = if c.has("mvnw") {
        d.because(&WRAPPER, &c.path("mvnw"), "use ./mvnw");
        "./mvnw"
    } else {
        "mvn"
    };
    if let Some(v) = versions
        .iter()
        .find(|v| !v.is_empty() && !v.starts_with("${"))
    {
        let v = v.trim_start_matches("1.").to_owned();
        d.because(&JAVA_VERSION, &pom_path, format!("java {v}"));
        d.runtime_versions = vec![v];
    }
    if artifacts.iter().any(|a| a.starts_with("spring-boot")) {
        d.frameworks.insert(Framework::SpringBoot);
        d.because(&SPRING_BOOT, &pom_path, "spring-boot");
    }
    if artifacts.iter().any(|a| a == "spotless-maven-plugin") {
        d.add_lint(format!("{mvn} -B spotless:check"));
        d.because(&SPOTLESS, &pom_path, "spotless");
    }
    d.install = Some(format!("{mvn} -B dependency:go-offline"));
    d.build = Some(format!("{mvn} -B package -DskipTests"));
    d.test = Some(format!("{mvn} -B verify"));
    d
}

fn detect_gradle(c: &Ctx) -> Draft {
    let file = GRADLE_FILES
        .iter()
        .copied()
        .find(|f| c.has(f))
        .unwrap_or("build.gradle");
    // Subprojects' build files (read too) carry the plugins and toolchains.
    let texts: String = c
        .tree
        .under(c.dir)
        .filter(|p| GRADLE_FILES.iter().any(|f| p.ends_with(f)))
        .filter_map(|p| c.tree.text(p))
        .collect::<Vec<_>>()
        .join("\n");
    let catalog = c.text("gradle/libs.versions.toml").unwrap_or("");
    let kotlin = texts.contains("kotlin(\"jvm\")")
        || texts.contains("org.jetbrains.kotlin")
        || catalog.contains("org.jetbrains.kotlin")
        || c.tree.under(c.dir).any(|p| p.contains("src/main/kotlin/"));
    let mut d = Draft::new(
        if kotlin {
            Language::Kotlin
        } else {
            Language::Java
        },
        0.9,
    );
    d.package_manager = Some(PackageManager::Gradle);
    d.test_tool = Some(TestTool::JunitGradle);
    d.because(&GRADLE_BUILD, &c.path(file), "Gradle project");
    if kotlin {
        d.because(&KOTLIN, &c.path(file), "language kotlin");
    }
    let gradle = if c.has("gradlew") {
        d.because(&WRAPPER, &c.path("gradlew"), "use ./gradlew");
        "./gradlew"
    } else {
        "gradle"
    };
    // JavaLanguageVersion.of(21), sourceCompatibility = JavaVersion.VERSION_17 / '17', jvmToolchain(21)
    let version = [
        "JavaLanguageVersion.of(",
        "jvmToolchain(",
        "JavaVersion.VERSION_",
        "sourceCompatibility = '",
        "sourceCompatibility = \"",
    ]
    .iter()
    .find_map(|pat| {
        let rest = &texts[texts.find(pat)? + pat.len()..];
        let v: String = rest
            .chars()
            .take_while(|ch| ch.is_ascii_digit() || *ch == '_' || *ch == '.')
            .collect();
        let v = v.replace('_', ".").trim_start_matches("1.").to_owned();
        (!v.is_empty()).then_some(v)
    });
    if let Some(v) = version {
        d.because(&JAVA_VERSION, &c.path(file), format!("java {v}"));
        d.runtime_versions = vec![v];
    }
    if texts.contains("org.springframework.boot") || catalog.contains("org.springframework.boot") {
        d.frameworks.insert(Framework::SpringBoot);
        d.because(&SPRING_BOOT, &c.path(file), "spring-boot");
    }
    if texts.contains("com.diffplug.spotless") || catalog.contains("com.diffplug.spotless") {
        d.add_lint(format!("{gradle} spotlessCheck"));
        d.because(&SPOTLESS, &c.path(file), "spotless");
    }
    d.install = Some(format!("{gradle} dependencies"));
    d.build = Some(format!("{gradle} build -x test"));
    d.test = Some(format!("{gradle} test"));
    d
}

fn detect_sbt(c: &Ctx) -> Draft {
    let mut d = Draft::new(Language::Scala, 0.9);
    d.package_manager = Some(PackageManager::Sbt);
    d.test_tool = Some(TestTool::SbtTest);
    d.because(&SBT_BUILD, &c.path("build.sbt"), "sbt project");
    d.build = Some("sbt compile".to_owned());
    d.test = Some("sbt test".to_owned());
    if c.has(".scalafmt.conf") {
        d.add_lint("sbt scalafmtCheckAll");
    }
    d
}
