//! Shared by the web tests: start `lab serve`, send it requests, lay out a cell waiting for
//! labels, drive Chromium over WebDriver.
pub mod cell;
pub mod http;
pub mod launch;
pub mod serve;
pub mod webdriver;
