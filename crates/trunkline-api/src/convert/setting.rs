//! `trunkline_core::settings::Setting` to `trunkline.v1.Setting`.

use crate::v1 as proto;
use trunkline_core::settings::Setting;

pub fn setting(key: &str, setting: &Setting) -> proto::Setting {
    proto::Setting {
        key: key.to_owned(),
        value: setting.value.clone(),
        create_index: setting.create_index,
        modify_index: setting.modify_index,
        version: setting.version,
    }
}
