//! Shared by the web tests: start `lab serve`, drive Chromium over WebDriver.
pub mod serve;
pub mod webdriver;
