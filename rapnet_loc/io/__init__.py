"""Data input (ROS-free): image messages (``images``), ROS 1/2 bags (``bag``), OpenLORIS bags (``openloris``),
7-Scenes frame folders (``sevenscenes``) and the plain types they produce (``types``)."""
