# home.cmake - the home example's end-to-end tests (F4), included from
# tests/CMakeLists.txt: the seeded scenario through the real `isoflow run`
# (test_home.sh) and the same stages as .wasm and as .so giving identical
# output (test_same_stage.sh).  Both use the stages built by stages/ into
# ISOFLOW_STAGES_DIR and tests/flow/home_test.flow.
if(ISOFLOW_STAGES_DIR AND TARGET room_sensor_native)
  isoflow_test(flow-home LABEL integration TIMEOUT 120
    COMMAND "${ISOFLOW_BASH}" "${T}/flow/test_home.sh"
            $<TARGET_FILE:isoflow> "${ISOFLOW_STAGES_DIR}" "${T}/flow")
  isoflow_test(flow-same-stage LABEL integration TIMEOUT 120
    COMMAND "${ISOFLOW_BASH}" "${T}/flow/test_same_stage.sh"
            $<TARGET_FILE:isoflow> "${ISOFLOW_STAGES_DIR}" "${T}/flow")
else()
  message(WARNING "home-example stages not built: flow-home and "
                  "flow-same-stage are not registered")
endif()
