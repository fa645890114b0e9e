#!/bin/sh
# Test environment only: generate and build the ROS 2 message package tf2_msgs (TFMessage) into the virtual
# environment $1, which already holds rclpy, geometry_msgs and the rosidl generators from PyPI (requirements-ros.txt).
# tf2_msgs is not on PyPI; a real ROS 2 install has it. The package is installed into the venv prefix, where
# ros-wheels-bootstrapper already puts $VENV/lib on LD_LIBRARY_PATH, so no environment variables are needed.
# Needs cmake, a C/C++ compiler and the Python headers (present on the Debian machines of DEVELOPERS.md).
set -eu
venv=$(cd "${1:-.venv}" && pwd)
py="$venv/bin/python"
if "$py" -c 'from tf2_msgs.msg import TFMessage' 2>/dev/null; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/msg"
echo 'geometry_msgs/TransformStamped[] transforms' > "$work/src/msg/TFMessage.msg"
cat > "$work/src/package.xml" <<'EOF'
<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.0.0</version>
  <description>TFMessage, built for the rapnet_loc test environment</description>
  <maintainer email="dev@rapnet-loc.invalid">rapnet_loc developers</maintainer>
  <license>BSD</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
EOF
cat > "$work/src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(tf2_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/TFMessage.msg" DEPENDENCIES geometry_msgs)
# The message wheels' exported Python-generator targets name the include folders of the machine that built
# them (/opt/python/...): point them at this interpreter's and NumPy's.
get_property(imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(target IN LISTS imported)
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(dirs MATCHES "^/opt/python/")
    set_target_properties(${target} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
  endif()
endforeach()
ament_export_dependencies(rosidl_default_runtime)
ament_package()
EOF
export AMENT_PREFIX_PATH="$venv"
export CMAKE_PREFIX_PATH="$venv"
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$venv" \
      -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF >"$work/cmake.log" 2>&1 \
  && cmake --build "$work/build" -j 2 >>"$work/cmake.log" 2>&1 \
  && cmake --install "$work/build" >>"$work/cmake.log" 2>&1 \
  || { cat "$work/cmake.log" >&2; echo "error: building tf2_msgs into $venv failed (log above)" >&2; exit 1; }
"$py" -c 'from tf2_msgs.msg import TFMessage; TFMessage()'
echo "tf2_msgs built into $venv"
