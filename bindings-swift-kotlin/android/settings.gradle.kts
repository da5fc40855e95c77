// TEMPLATE — NOT VERIFIED: no Android Gradle Plugin or SDK on the machines this was written on
// (bindings-swift-kotlin/README.md, "Android"). A standalone build of the library module; in
// an app, include this directory as a module instead (`include(":meterline")` with its
// `projectDir` pointing here).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "meterline-android"
